using System.Globalization;
using System.Net;
using Gatehouse.Certificates;
using Gatehouse.Sites;
using Gatehouse.Storage.Etcd;
using Microsoft.Extensions.Configuration.CommandLine;

namespace Gatehouse.Hosting;

/// <summary>
/// Reads configuration the ASP.NET way — the YAML file, then <c>GATEHOUSE_</c> environment variables (e.g.
/// <c>GATEHOUSE_EDGE__HTTPSPORT</c>), then command-line overrides (e.g. <c>--edge:httpsPort=9443</c>) — and
/// validates it, collecting every error with where it came from.
/// </summary>
public sealed class GatehouseConfiguration
{
    public const string EnvironmentPrefix = "GATEHOUSE_";

    private static readonly string[] TopLevelKeys = ["dataDirectory", "edge", "admin", "localCa", "store", "keys", "issuers", "certificates", "welcome", "sites", "logging"];
    private static readonly string[] AcmeIssuerKeys = ["type", "directory", "contact", "acceptTerms", "caBundle", "eab", "preferredChain", "challenges", "dns", "keyType"];
    private static readonly string[] DnsKeys = ["type", "server", "zone", "keyName", "algorithm", "secretEnv", "secretFile", "command", "nameservers", "nameserverPort", "propagationTimeout"];
    private static readonly string[] EabKeys = ["kid", "hmacEnv", "hmacFile"];
    private static readonly string[] ChallengeTypes = ["http-01", "tls-alpn-01", "dns-01"];
    private static readonly string[] KeysKeys = ["provider", "rotationPeriod", "providers"];
    private static readonly string[] StoreSectionKeys = ["type", "etcd"];
    private static readonly string[] EtcdSectionKeys = ["endpoints", "prefix", "caFile", "certFile", "keyFile", "username", "passwordEnv", "passwordFile", "timeout"];
    private static readonly string[] SoftwareProviderKeys = ["type", "file"];
    private static readonly string[] PassphraseProviderKeys = ["type", "passphraseEnv", "passphraseFile"];
    private static readonly string[] Pkcs11ProviderKeys = ["type", "library", "token", "label", "pinEnv", "pinFile"];
    private static readonly string[] EdgeKeys = ["address", "httpsPort", "httpPort", "publicHttpsPort", "handshakeTimeout", "passthroughIdleTimeout", "defaultSite", "tlsEngine", "socketCompletions"];
    private static readonly string[] AdminKeys = ["address", "port"];
    private static readonly string[] LocalCaKeys = ["leafLifetime"];
    private static readonly string[] WelcomeKeys = ["port"];
    private static readonly string[] SiteKeys = ["hosts", "backends", "mode", "proxyProtocol", "issuers", "keyType", "profile", "clientAuth", "hsts", "backendTls", "healthCheck"];
    private static readonly string[] BackendTlsKeys = ["ca", "caFile", "serverName", "sni"];
    private static readonly string[] HealthCheckKeys = ["path", "interval", "timeout", "unhealthyAfter", "healthyAfter", "passive", "reactivateAfter"];
    private static readonly string[] ClientAuthKeys = ["mode", "ca", "caFile", "allowedSubjects", "allowedSans", "requiredPaths"];
    private static readonly string[] HstsKeys = ["maxAge", "includeSubdomains", "preload"];

    private readonly string? _configPath;
    private readonly string[] _overrides;
    private readonly IDictionary<string, string?>? _environment;

    /// <param name="configPath">The YAML file, or null for defaults only.</param>
    /// <param name="overrides">Command-line overrides (<c>--key=value</c> or <c>--key value</c>).</param>
    /// <param name="environment">Environment variables to read instead of the process's (tests).</param>
    public GatehouseConfiguration(string? configPath, string[] overrides, IDictionary<string, string?>? environment = null)
    {
        _configPath = configPath is null ? null : Path.GetFullPath(configPath);
        _overrides = overrides;
        _environment = environment;
    }

    public string? ConfigPath => _configPath;

    /// <summary>Loads and validates. Returns the options, or null with every error in <paramref name="errors"/>.</summary>
    public GatehouseOptions? Load(List<string> errors)
    {
        var fileName = _configPath is null ? "defaults" : Path.GetFileName(_configPath);
        var builder = new ConfigurationBuilder();
        if (_configPath is not null)
        {
            string text;
            try
            {
                text = File.ReadAllText(_configPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                errors.Add($"{_configPath}: cannot be read: {ex.Message}");
                return null;
            }

            try
            {
                builder.AddInMemoryCollection(YamlConfiguration.Flatten(text));
            }
            catch (FormatException ex)
            {
                errors.Add($"{_configPath}: {ex.Message}");
                return null;
            }
        }

        if (_environment is null)
        {
            builder.AddEnvironmentVariables(EnvironmentPrefix);
        }
        else
        {
            builder.AddInMemoryCollection(_environment
                .Where(e => e.Key.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
                .Select(e => KeyValuePair.Create(e.Key[EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal), e.Value)));
        }

        builder.AddCommandLine(_overrides);
        var root = builder.Build();
        var reader = new Reader(root, fileName, _configPath is not null);
        var options = reader.Read(_configPath);
        errors.AddRange(reader.Errors);
        return reader.Errors.Count == 0 ? options : null;
    }

    private sealed class Reader(IConfigurationRoot root, string fileName, bool hasFile)
    {
        public List<string> Errors { get; } = [];

        public GatehouseOptions Read(string? configPath)
        {
            _configDirectory = configPath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(configPath)!;
            CheckKnownKeys(root, TopLevelKeys, "");
            var dataDirectory = root["dataDirectory"] is { Length: > 0 } configured
                ? Path.GetFullPath(configured, configPath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(configPath)!)
                : Path.GetFullPath("data");
            CheckDataDirectory(dataDirectory);

            var edge = root.GetSection("edge");
            CheckKnownKeys(edge, EdgeKeys, "edge:");
            var admin = root.GetSection("admin");
            CheckKnownKeys(admin, AdminKeys, "admin:");
            var localCa = root.GetSection("localCa");
            CheckKnownKeys(localCa, LocalCaKeys, "localCa:");
            var welcome = root.GetSection("welcome");
            CheckKnownKeys(welcome, WelcomeKeys, "welcome:");

            var acmeIssuers = ReadIssuers(configPath);
            var options = new GatehouseOptions
            {
                DataDirectory = dataDirectory,
                ConfigPath = configPath,
                Edge = new EdgeOptions
                {
                    Address = Address("edge:address", IPAddress.Loopback),
                    HttpsPort = Port("edge:httpsPort", 8443),
                    HttpPort = Port("edge:httpPort", 8080),
                    PublicHttpsPort = root["edge:publicHttpsPort"] is null ? null : Port("edge:publicHttpsPort", 443),
                    HandshakeTimeout = Span("edge:handshakeTimeout", TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5)),
                    PassthroughIdleTimeout = Span("edge:passthroughIdleTimeout", TimeSpan.FromHours(1), TimeSpan.FromSeconds(1), TimeSpan.FromDays(7)),
                    DefaultSite = DefaultSite("edge:defaultSite"),
                    TlsEngine = TlsEngine("edge:tlsEngine"),
                    SocketCompletions = SocketCompletions("edge:socketCompletions"),
                },
                Admin = new AdminOptions
                {
                    Address = Address("admin:address", IPAddress.Loopback),
                    Port = Port("admin:port", 9443),
                },
                LocalCa = new LocalCaOptions
                {
                    LeafLifetime = Span("localCa:leafLifetime", TimeSpan.FromDays(7), TimeSpan.FromMinutes(5), TimeSpan.FromDays(398)),
                },
                Store = ReadStore(configPath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(configPath)!),
                Keys = ReadKeys(dataDirectory),
                AcmeIssuers = acmeIssuers,
                MaxConcurrentIssuances = Count("certificates:maxConcurrentIssuances", 10, 1, 256),
                LockTtl = Span("certificates:lockTtl", TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5)),
                WelcomePort = welcome.Exists() ? Port("welcome:port", 8090) : null,
                LogLevel = ReadLogLevel(),
                Sites = ReadSites(new HashSet<string>(acmeIssuers.Select(i => i.Name).Append(LocalCertificateAuthority.IssuerName), StringComparer.Ordinal)),
            };

            var ports = new List<(string Key, int Port)> { ("edge:httpsPort", options.Edge.HttpsPort), ("edge:httpPort", options.Edge.HttpPort), ("admin:port", options.Admin.Port) };
            if (options.WelcomePort is { } welcomePort)
            {
                ports.Add(("welcome:port", welcomePort));
            }

            foreach (var group in ports.GroupBy(p => p.Port).Where(g => g.Count() > 1))
            {
                Error(group.Last().Key, $"port {group.Key} is also used by {string.Join(", ", group.SkipLast(1).Select(p => p.Key))}");
            }

            return options;
        }

        private KeysOptions? ReadKeys(string dataDirectory)
        {
            var keys = root.GetSection("keys");
            if (!keys.Exists())
            {
                return null;
            }

            CheckKnownKeys(keys, KeysKeys, "keys:");
            var providers = new List<KeyProviderOptions>();
            foreach (var section in keys.GetSection("providers").GetChildren())
            {
                var path = $"keys:providers:{section.Key}";
                if (!System.Text.RegularExpressions.Regex.IsMatch(section.Key, "^[A-Za-z0-9._-]{1,32}$"))
                {
                    Error(path, "a provider name has 1–32 characters of [A-Za-z0-9._-] (write providers as a map: name: {type: ...})");
                    continue;
                }

                if (section["pin"] is not null || section["passphrase"] is not null)
                {
                    Error(path, "secrets never go in the configuration: name where they are with pinEnv/pinFile or passphraseEnv/passphraseFile");
                    continue;
                }

                var type = section["type"];
                switch (type?.ToUpperInvariant())
                {
                    case "SOFTWARE":
                        CheckKnownKeys(section, SoftwareProviderKeys, path + ":");
                        providers.Add(new KeyProviderOptions
                        {
                            Name = section.Key,
                            Type = KeyProviderType.Software,
                            File = Path.GetFullPath(section["file"] is { Length: > 0 } file ? file : "master.key", dataDirectory),
                        });
                        break;
                    case "PASSPHRASE":
                        CheckKnownKeys(section, PassphraseProviderKeys, path + ":");
                        var (env, secretFile) = SecretSource(section, path, "passphraseEnv", "passphraseFile");
                        providers.Add(new KeyProviderOptions { Name = section.Key, Type = KeyProviderType.Passphrase, SecretEnvironmentVariable = env, SecretFile = secretFile });
                        break;
                    case "PKCS11":
                        CheckKnownKeys(section, Pkcs11ProviderKeys, path + ":");
                        var (pinEnv, pinFile) = SecretSource(section, path, "pinEnv", "pinFile");
                        foreach (var required in new[] { "library", "token", "label" })
                        {
                            if (string.IsNullOrWhiteSpace(section[required]))
                            {
                                Error($"{path}:{required}", "required for a pkcs11 provider");
                            }
                        }

                        providers.Add(new KeyProviderOptions
                        {
                            Name = section.Key,
                            Type = KeyProviderType.Pkcs11,
                            Library = section["library"],
                            Token = section["token"],
                            Label = section["label"],
                            SecretEnvironmentVariable = pinEnv,
                            SecretFile = pinFile,
                        });
                        break;
                    default:
                        Error(path + ":type", $"'{type}' is not a provider type (software, passphrase, pkcs11)");
                        break;
                }
            }

            if (providers.Count == 0 && !keys.GetSection("providers").Exists())
            {
                providers.Add(new KeyProviderOptions { Name = KeysOptions.DefaultProviderName, Type = KeyProviderType.Software, File = Path.Combine(dataDirectory, "master.key") });
            }

            var provider = keys["provider"] ?? (providers.Count == 1 ? providers[0].Name : KeysOptions.DefaultProviderName);
            if (providers.Count > 0 && !providers.Any(p => p.Name == provider))
            {
                Error("keys:provider", $"'{provider}' is not one of keys:providers ({string.Join(", ", providers.Select(p => p.Name))})");
            }

            var period = root["keys:rotationPeriod"] is "0" or "off" ? TimeSpan.Zero : Span("keys:rotationPeriod", TimeSpan.FromDays(90), TimeSpan.FromMinutes(1), TimeSpan.FromDays(3650));
            return new KeysOptions { Provider = provider, RotationPeriod = period, Providers = providers };
        }

        private StoreOptions ReadStore(string baseDirectory)
        {
            var store = root.GetSection("store");
            if (!store.Exists())
            {
                return new StoreOptions();
            }

            CheckKnownKeys(store, StoreSectionKeys, "store:");
            var etcd = store.GetSection("etcd");
            switch (store["type"]?.ToUpperInvariant())
            {
                case null or "SQLITE":
                    if (etcd.Exists())
                    {
                        Error(EtcdOptions.ConfigPath, "is only read with store:type etcd (the store is sqlite)");
                    }

                    return new StoreOptions();
                case "ETCD":
                    return new StoreOptions { Type = StoreType.Etcd, Etcd = ReadEtcd(etcd, baseDirectory) };
                default:
                    Error("store:type", $"'{store["type"]}' is not a store type (sqlite, etcd)");
                    return new StoreOptions();
            }
        }

        private EtcdOptions ReadEtcd(IConfigurationSection etcd, string baseDirectory)
        {
            const string Section = EtcdOptions.ConfigPath;
            CheckKnownKeys(etcd, EtcdSectionKeys, Section + ":", reportedElsewhere: "password");
            if (etcd["password"] is not null)
            {
                Error(Section + ":password", "secrets never go in the configuration: name where the password is with passwordEnv or passwordFile");
            }

            // A list, or one string of comma-separated URLs (handy in GATEHOUSE_STORE__ETCD__ENDPOINTS).
            var listed = List(etcd, "endpoints").SelectMany(e => (e ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList();
            var endpoints = new List<Uri>();
            if (listed.Count == 0)
            {
                Error(Section + ":endpoints", "required with store:type etcd: the members' client URLs, e.g. [https://10.0.0.1:2379, https://10.0.0.2:2379]");
            }

            foreach (var text in listed)
            {
                var problem = Uri.TryCreate(text, UriKind.Absolute, out var endpoint) ? EtcdStoreOptions.DescribeEndpointProblem(endpoint) : "is not an http:// or https:// URL";
                if (problem is null)
                {
                    endpoints.Add(endpoint!);
                }
                else
                {
                    // A password in the URL is not repeated back.
                    var shown = endpoint is { UserInfo.Length: > 0 } ? text.Replace(endpoint.UserInfo + "@", "…@", StringComparison.Ordinal) : text;
                    Error(Section + ":endpoints", $"'{shown}' {problem}");
                }
            }

            if (endpoints.Select(e => e.Scheme).Distinct(StringComparer.Ordinal).Count() > 1)
            {
                Error(Section + ":endpoints", "mixes http:// and https:// URLs");
            }

            var prefix = etcd["prefix"] ?? "";
            if (EtcdStoreOptions.DescribePrefixProblem(prefix) is { } prefixProblem)
            {
                Error(Section + ":prefix", $"'{prefix}' {prefixProblem} (example: /prod-edge)");
            }

            string? FileOf(string key) => etcd[key] is { Length: > 0 } file ? Path.GetFullPath(file, baseDirectory) : null;
            var (caFile, certFile, keyFile) = (FileOf("caFile"), FileOf("certFile"), FileOf("keyFile"));
            if ((certFile is null) != (keyFile is null))
            {
                Error(Section, "a client certificate needs both certFile and keyFile");
            }

            if ((caFile ?? certFile ?? keyFile) is not null && endpoints.Any(e => e.Scheme != Uri.UriSchemeHttps))
            {
                Error(Section + ":endpoints", "caFile, certFile and keyFile are for TLS: the endpoints must be https:// URLs");
            }

            var username = etcd["username"] is { Length: > 0 } user ? user : null;
            string? passwordEnv = null, passwordFile = null;
            if (username is not null)
            {
                (passwordEnv, passwordFile) = SecretSource(etcd, Section, "passwordEnv", "passwordFile");
            }
            else if (etcd["passwordEnv"] is not null || etcd["passwordFile"] is not null)
            {
                Error(Section + (etcd["passwordEnv"] is not null ? ":passwordEnv" : ":passwordFile"), "is only used with username (the etcd user it is the password of)");
            }

            return new EtcdOptions
            {
                Endpoints = endpoints,
                Prefix = prefix,
                CaFile = caFile,
                CertFile = certFile,
                KeyFile = keyFile,
                Username = username,
                PasswordEnvironmentVariable = passwordEnv,
                PasswordFile = passwordFile,
                Timeout = Span(Section + ":timeout", TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5)),
            };
        }

        private (string? Env, string? File) SecretSource(IConfigurationSection section, string path, string envKey, string fileKey)
        {
            var env = section[envKey];
            var file = section[fileKey];
            if (string.IsNullOrWhiteSpace(env) == string.IsNullOrWhiteSpace(file))
            {
                Error(path, $"give exactly one of {envKey} (an environment variable's name) or {fileKey} (a file)");
            }

            return (string.IsNullOrWhiteSpace(env) ? null : env, string.IsNullOrWhiteSpace(file) ? null : Path.GetFullPath(file));
        }

        private List<AcmeIssuerOptions> ReadIssuers(string? configPath)
        {
            var result = new List<AcmeIssuerOptions>();
            var baseDirectory = configPath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(configPath)!;
            foreach (var section in root.GetSection("issuers").GetChildren())
            {
                var path = $"issuers:{section.Key}";
                if (!System.Text.RegularExpressions.Regex.IsMatch(section.Key, "^[a-z0-9][a-z0-9._-]{0,31}$") || section.Key == LocalCertificateAuthority.IssuerName)
                {
                    Error(path, $"an issuer name has 1–32 characters of [a-z0-9._-] and is not '{LocalCertificateAuthority.IssuerName}' (the built-in CA); write issuers as a map: name: {{type: acme, ...}}");
                    continue;
                }

                if (section["type"] != "acme")
                {
                    Error(path + ":type", $"'{section["type"]}' is not an issuer type (acme)");
                    continue;
                }

                CheckKnownKeys(section, AcmeIssuerKeys, path + ":");
                if (!Uri.TryCreate(section["directory"], UriKind.Absolute, out var directory) || directory.Scheme != Uri.UriSchemeHttps)
                {
                    Error(path + ":directory", $"'{section["directory"]}' is not an https URL of an ACME directory");
                    continue;
                }

                var eab = section.GetSection("eab");
                CheckKnownKeys(eab, EabKeys, path + ":eab:");
                string? hmacEnv = null, hmacFile = null;
                if (eab.Exists())
                {
                    if (string.IsNullOrWhiteSpace(eab["kid"]))
                    {
                        Error(path + ":eab:kid", "required with eab");
                    }

                    if (eab["hmac"] is not null)
                    {
                        Error(path + ":eab", "secrets never go in the configuration: name where the HMAC key is with hmacEnv or hmacFile");
                    }

                    (hmacEnv, hmacFile) = SecretSource(eab, path + ":eab", "hmacEnv", "hmacFile");
                }

                var challenges = List(section, "challenges").Select(c => c?.ToLowerInvariant()).ToList();
                foreach (var challenge in challenges.Where(c => !ChallengeTypes.Contains(c)))
                {
                    Error(path + ":challenges", $"'{challenge}' is not a challenge type ({string.Join(", ", ChallengeTypes)})");
                }

                var dns = ReadDns(section.GetSection("dns"), path + ":dns");
                if (section["keyType"] is { } issuerKeyType && !SiteDefinition.KeyTypes.Contains(issuerKeyType))
                {
                    Error(path + ":keyType", $"'{issuerKeyType}' is not a key type ({string.Join(", ", SiteDefinition.KeyTypes)})");
                }

                if (challenges.Contains("dns-01") && dns is null)
                {
                    Error(path + ":challenges", "dns-01 needs a DNS provider: add dns: {type: rfc2136, ...} or dns: {type: exec, command: [...]}");
                }

                var acceptTerms = section["acceptTerms"];
                if (acceptTerms is not null and not "true" and not "false")
                {
                    Error(path + ":acceptTerms", $"'{acceptTerms}' is not true or false");
                }

                result.Add(new AcmeIssuerOptions
                {
                    Name = section.Key,
                    Directory = directory,
                    Contact = [.. List(section, "contact").OfType<string>()],
                    AcceptTerms = acceptTerms == "true",
                    CaBundle = section["caBundle"] is { Length: > 0 } bundle ? Path.GetFullPath(bundle, baseDirectory) : null,
                    EabKeyId = eab["kid"],
                    EabHmacEnvironmentVariable = hmacEnv,
                    EabHmacFile = hmacFile,
                    PreferredChain = section["preferredChain"],
                    Challenges = challenges.Count > 0 ? challenges.OfType<string>().ToList() : ["http-01", "tls-alpn-01"],
                    Dns = dns,
                    KeyType = section["keyType"],
                });
            }

            return result;
        }

        private AcmeDnsOptions? ReadDns(IConfigurationSection dns, string path)
        {
            if (!dns.Exists())
            {
                return null;
            }

            CheckKnownKeys(dns, DnsKeys, path + ":");
            if (dns["secret"] is not null)
            {
                Error(path, "secrets never go in the configuration: name where the TSIG secret is with secretEnv or secretFile");
            }

            int? port = dns["nameserverPort"] is null ? null : Port(path + ":nameserverPort", 53);
            var timeout = Span(path + ":propagationTimeout", TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
            switch (dns["type"])
            {
                case "rfc2136":
                    foreach (var required in new[] { "server", "keyName" })
                    {
                        if (string.IsNullOrWhiteSpace(dns[required]))
                        {
                            Error($"{path}:{required}", "required for an rfc2136 provider");
                        }
                    }

                    if (dns["algorithm"] is { } algorithm && algorithm is not ("hmac-sha256" or "hmac-sha512"))
                    {
                        Error(path + ":algorithm", $"'{algorithm}' is not a TSIG algorithm (hmac-sha256, hmac-sha512)");
                    }

                    var (env, file) = SecretSource(dns, path, "secretEnv", "secretFile");
                    return new AcmeDnsOptions
                    {
                        Type = "rfc2136", Server = dns["server"], Zone = dns["zone"], KeyName = dns["keyName"], Algorithm = dns["algorithm"] ?? "hmac-sha256",
                        SecretEnvironmentVariable = env, SecretFile = file, Nameservers = [.. List(dns, "nameservers").OfType<string>()], NameserverPort = port, PropagationTimeout = timeout,
                    };
                case "exec":
                    var command = List(dns, "command").OfType<string>().ToList();
                    if (command.Count == 0)
                    {
                        Error(path + ":command", "required for an exec provider: [program, args...] (run without a shell; it gets action, name and value)");
                    }

                    return new AcmeDnsOptions { Type = "exec", Command = command, Nameservers = [.. List(dns, "nameservers").OfType<string>()], NameserverPort = port, PropagationTimeout = timeout };
                default:
                    Error(path + ":type", $"'{dns["type"]}' is not a DNS provider type (rfc2136, exec)");
                    return null;
            }
        }

        private IReadOnlyList<(SiteDefinition, string)> ReadSites(IReadOnlySet<string> issuerNames)
        {
            var drafts = new List<SiteValidator.Draft>();
            foreach (var site in root.GetSection("sites").GetChildren().OrderBy(s => int.TryParse(s.Key, CultureInfo.InvariantCulture, out var i) ? i : int.MaxValue))
            {
                var path = $"sites:{site.Key}";
                if (!int.TryParse(site.Key, CultureInfo.InvariantCulture, out _))
                {
                    Error(path, "'sites' is a list: write each site as '- hosts: [...]'");
                    continue;
                }

                CheckKnownKeys(site, SiteKeys, path + ":");
                drafts.Add(new SiteValidator.Draft(path, List(site, "hosts"), List(site, "backends"), List(site, "issuers"), site["keyType"], site["profile"], site["mode"], site["proxyProtocol"])
                {
                    ClientAuth = ReadClientAuth(site.GetSection("clientAuth"), path + ":clientAuth"),
                    Hsts = ReadHsts(site.GetSection("hsts"), path + ":hsts"),
                    BackendTls = ReadBackendTls(site.GetSection("backendTls"), path + ":backendTls"),
                    HealthCheck = ReadHealthCheck(site.GetSection("healthCheck"), path + ":healthCheck"),
                });
            }

            var errors = new List<ValidationError>();
            var sites = SiteValidator.Validate(drafts, SiteSource.Config, issuerNames, errors);
            foreach (var error in errors)
            {
                Error(error.Path, error.Message);
            }

            // Pair each valid site with its path (Validate keeps the drafts' order and skips invalid ones).
            var byId = sites.ToDictionary(s => s.Id, StringComparer.Ordinal);
            var result = new List<(SiteDefinition, string)>();
            foreach (var draft in drafts)
            {
                if (draft.Hosts.Count > 0 && HostName.TryNormalize(draft.Hosts[0], out var id, out _) && byId.Remove(id, out var site))
                {
                    result.Add((site, draft.Path));
                }
            }

            return result;
        }

        /// <summary>A site's <c>backendTls</c>: the CA bundle inline (<c>ca</c>) or from a file read now (<c>caFile</c>,
        /// relative to the config file), the name to verify and the SNI. A client certificate is refused here: its key
        /// would sit in a file in plaintext, so it goes through the admin API, which seals it.</summary>
        private BackendTlsDraft? ReadBackendTls(IConfigurationSection section, string path)
        {
            if (!section.Exists())
            {
                return null;
            }

            foreach (var key in new[] { "clientCertificate", "clientCertFile", "clientKey", "clientKeyFile" })
            {
                if (section[key] is not null)
                {
                    Error($"{path}:{key}", "a backend client certificate is not read from the config file (its private key would be stored in plaintext there); add the site with `gatehouse sites add ... --backend-client-cert FILE --backend-client-key FILE` (or POST /v1/sites), which seals the key in the store");
                }
            }

            CheckKnownKeys(section, [.. BackendTlsKeys, "clientCertificate", "clientCertFile", "clientKey", "clientKeyFile"], path + ":");
            string? ca = section["ca"];
            var field = "ca";
            if (section["caFile"] is { Length: > 0 } caFile)
            {
                field = "caFile";
                if (ca is not null)
                {
                    Error(path, "give the CA bundle once: ca (PEM text) or caFile (a file), not both");
                }

                var full = Path.GetFullPath(caFile, _configDirectory);
                try
                {
                    ca = File.ReadAllText(full);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Error($"{path}:caFile", $"cannot read '{full}': {ex.Message}");
                    ca = null;
                }
            }

            return new BackendTlsDraft(ca, section["serverName"], section["sni"], CaField: field);
        }

        private HealthCheckDraft? ReadHealthCheck(IConfigurationSection section, string path)
        {
            if (!section.Exists())
            {
                return null;
            }

            CheckKnownKeys(section, HealthCheckKeys, path + ":");
            return new HealthCheckDraft(section["path"], section["interval"], section["timeout"], section["unhealthyAfter"], section["healthyAfter"], section["passive"], section["reactivateAfter"]);
        }

        private string _configDirectory = Directory.GetCurrentDirectory();

        /// <summary>A site's <c>clientAuth</c> map; <c>caFile</c> (relative to the config file) is read here, so the
        /// store keeps the bundle itself and every instance sees the same one.</summary>
        private ClientAuthDraft? ReadClientAuth(IConfigurationSection section, string path)
        {
            if (!section.Exists())
            {
                return null;
            }

            CheckKnownKeys(section, ClientAuthKeys, path + ":");
            string? ca = section["ca"];
            var caKey = "ca";
            if (section["caFile"] is { } caFile)
            {
                caKey = "caFile";
                if (ca is not null)
                {
                    Error(path + ":caFile", "give the client CA bundle once: ca (PEM) or caFile, not both");
                }

                try
                {
                    ca = File.ReadAllText(Path.GetFullPath(caFile, _configDirectory));
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
                {
                    Error(path + ":caFile", $"'{caFile}' cannot be read: {ex.Message}");
                    ca = null;
                }
            }

            return new ClientAuthDraft(section["mode"], ca, List(section, "allowedSubjects"), List(section, "allowedSans"), List(section, "requiredPaths"), caKey);
        }

        /// <summary>A site's <c>hsts</c>: <c>off</c>, <c>on</c>, or a map.</summary>
        private HstsDraft? ReadHsts(IConfigurationSection section, string path)
        {
            if (!section.Exists())
            {
                return null;
            }

            if (section.Value is { } scalar)
            {
                return new HstsDraft(scalar);
            }

            CheckKnownKeys(section, HstsKeys, path + ":");
            return new HstsDraft(null, section["maxAge"], section["includeSubdomains"], section["preload"]);
        }

        private static List<string?> List(IConfigurationSection section, string key)
        {
            var child = section.GetSection(key);
            var items = child.GetChildren().ToList();
            if (items.Count == 0)
            {
                return child.Value is { Length: > 0 } single ? [single] : [];
            }

            return [.. items.OrderBy(c => int.TryParse(c.Key, CultureInfo.InvariantCulture, out var i) ? i : int.MaxValue).Select(c => c.Value)];
        }

        /// <summary><c>logging:level</c>: the least severe level Gatehouse logs (its own events; the frameworks' stay at
        /// Warning).</summary>
        private LogLevel ReadLogLevel()
        {
            CheckKnownKeys(root.GetSection("logging"), ["level"], "logging:");
            var text = root["logging:level"];
            if (text is null)
            {
                return LogLevel.Information;
            }

            string[] levels = ["trace", "debug", "information", "warning", "error", "critical"];
            var index = Array.FindIndex(levels, l => l.Equals(text.Trim(), StringComparison.OrdinalIgnoreCase));
            if (index < 0)
            {
                Error("logging:level", $"'{text}' is not a level (one of: {string.Join(", ", levels)})");
                return LogLevel.Information;
            }

            return (LogLevel)index;
        }

        private void CheckKnownKeys(IConfiguration section, string[] known, string prefix, string? reportedElsewhere = null)
        {
            foreach (var child in section.GetChildren().Where(c => c.Key != reportedElsewhere))
            {
                // A typo in the file or on the command line is an error; other GATEHOUSE_* variables in the
                // environment (the CLI's GATEHOUSE_ADMIN_TOKEN, a script's own) are not ours to judge.
                if (!known.Contains(child.Key, StringComparer.OrdinalIgnoreCase) && SourceOf(prefix + child.Key) != "environment")
                {
                    Error(prefix + child.Key, $"unknown key (known: {string.Join(", ", known)})");
                }
            }
        }

        private void CheckDataDirectory(string path)
        {
            try
            {
                // Owner-only when created here: the store, key file and admin token are nobody else's business.
                Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                var probe = Path.Combine(path, $".write-test-{Environment.ProcessId}");
                File.WriteAllBytes(probe, []);
                File.Delete(probe);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Error("dataDirectory", $"'{path}' is not a writable directory: {ex.Message}");
            }
        }

        private int Count(string key, int fallback, int min, int max)
        {
            CheckKnownKeys(root.GetSection("certificates"), ["maxConcurrentIssuances", "lockTtl"], "certificates:");
            var text = root[key];
            if (text is null)
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            {
                Error(key, $"'{text}' is not a whole number in {min}–{max}");
                return fallback;
            }

            return value;
        }

        private int Port(string key, int fallback)
        {
            var text = root[key];
            if (text is null)
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                Error(key, $"'{text}' is not a port number (1–65535)");
                return fallback;
            }

            return port;
        }

        /// <summary>Which TLS implementation terminates the edge's connections: <c>openssl</c> (default) or <c>dotnet</c>.</summary>
        private EdgeTlsEngine TlsEngine(string key) =>
            Choice(key, "a TLS engine", ("openssl", EdgeTlsEngine.OpenSsl), ("dotnet", EdgeTlsEngine.DotNet));

        /// <summary>Where socket completions run: on the thread <c>pool</c> (default) or <c>inline</c> on the I/O threads.</summary>
        private EdgeSocketCompletions SocketCompletions(string key) =>
            Choice(key, "where socket completions run", ("pool", EdgeSocketCompletions.Pool), ("inline", EdgeSocketCompletions.Inline));

        /// <summary>One of a few named values, case-insensitive; the first is the default when the key is not set, and
        /// stands in after an error that names the key, the value and the choices.</summary>
        private T Choice<T>(string key, string what, params (string Name, T Value)[] choices)
        {
            var text = root[key]?.Trim();
            if (string.IsNullOrEmpty(text))
            {
                return choices[0].Value;
            }

            foreach (var (name, value) in choices)
            {
                if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase))
                {
                    return value;
                }
            }

            Error(key, $"'{root[key]}' is not {what}: use {string.Join(" or ", choices.Select(c => c.Name))}");
            return choices[0].Value;
        }

        /// <summary>A host name to serve clients that send no SNI; any site may claim it later, so it is not looked up.</summary>
        private string? DefaultSite(string key)
        {
            var text = root[key];
            if (string.IsNullOrWhiteSpace(text))
            {
                return null;
            }

            if (!HostName.TryNormalize(text, out var host, out var error))
            {
                Error(key, error);
                return null;
            }

            if (HostName.IsWildcard(host))
            {
                Error(key, $"'{text}' is a wildcard; the default site is one exact host name of a site");
                return null;
            }

            return host;
        }

        private IPAddress Address(string key, IPAddress fallback)
        {
            var text = root[key];
            if (text is null)
            {
                return fallback;
            }

            if (text.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            {
                return IPAddress.Loopback;
            }

            if (!IPAddress.TryParse(text, out var address))
            {
                Error(key, $"'{text}' is not an IP address (examples: 127.0.0.1, 0.0.0.0, ::)");
                return fallback;
            }

            return address;
        }

        private TimeSpan Span(string key, TimeSpan fallback, TimeSpan min, TimeSpan max)
        {
            var text = root[key];
            if (text is null)
            {
                return fallback;
            }

            if (!Duration.TryParse(text, out var value))
            {
                Error(key, $"'{text}' is not a duration (examples: 7d, 12h, 30m, 45s)");
                return fallback;
            }

            if (value < min || value > max)
            {
                Error(key, $"{text} is outside {min} – {max}");
                return fallback;
            }

            return value;
        }

        private void Error(string key, string message) => Errors.Add($"{SourceOf(key)}: {key}: {message}");

        /// <summary>Names the configuration source that supplied <paramref name="key"/> (the last one wins).</summary>
        private string SourceOf(string key)
        {
            foreach (var provider in root.Providers.Reverse())
            {
                var found = provider.TryGet(key, out _) || provider.GetChildKeys([], key).Any();
                if (found)
                {
                    return provider switch
                    {
                        CommandLineConfigurationProvider => "command line",
                        _ when hasFile && ReferenceEquals(provider, root.Providers.First()) => fileName,
                        _ => "environment",
                    };
                }
            }

            return hasFile ? $"{fileName} (default)" : "default";
        }
    }
}
