using System.Buffers.Text;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Gatehouse.Acme;
using Gatehouse.Certificates;
using Gatehouse.Dns;
using Gatehouse.Edge.Challenges;
using Gatehouse.Keys;
using Gatehouse.Storage;

namespace Gatehouse.Hosting;

/// <summary>Builds the configured ACME issuers: their HTTP clients (trust), EAB secrets and challenge solvers.</summary>
internal static class AcmeIssuers
{
    /// <exception cref="MasterKeyException">An EAB secret or CA bundle cannot be read; the message names it.</exception>
    public static List<AcmeIssuer> Create(GatehouseOptions options, IStore store, EnvelopeCipher cipher, TlsAlpnResponder tlsAlpn, TimeProvider time, ILoggerFactory loggers)
    {
        var issuers = new List<AcmeIssuer>();
        foreach (var issuer in options.AcmeIssuers)
        {
            byte[]? hmac = null;
            if (issuer.EabKeyId is not null)
            {
                var (secret, source) = KeyProviders.ReadSecret(issuer.ConfigPath + ":eab", issuer.EabHmacEnvironmentVariable, issuer.EabHmacFile, Environment.GetEnvironmentVariable, "EAB HMAC key");
                try
                {
                    hmac = Base64Url.DecodeFromChars(Encoding.ASCII.GetString(secret).Trim());
                }
                catch (FormatException)
                {
                    throw new MasterKeyException($"{issuer.ConfigPath}:eab: the EAB HMAC key from {source} is not base64url.");
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(secret);
                }
            }

            var solvers = new List<IAcmeChallengeSolver>();
            foreach (var challenge in issuer.Challenges)
            {
                solvers.Add(challenge switch
                {
                    "http-01" => new Http01StoreSolver(store),
                    "tls-alpn-01" => new TlsAlpn01StoreSolver(store, cipher, time, (host, _, ct) => WaitUntilPresentedAsync(tlsAlpn, host, ct)),
                    "dns-01" => new AcmeDns01Solver(CreateDnsProvider(issuer, loggers, time), issuer.Dns!.PropagationTimeout),
                    _ => throw new MasterKeyException($"{issuer.ConfigPath}:challenges: {challenge} is not available"),
                });
            }

            var settings = new AcmeIssuerSettings
            {
                Name = issuer.Name,
                Directory = issuer.Directory,
                Contact = issuer.Contact,
                AcceptTerms = issuer.AcceptTerms,
                EabKeyId = issuer.EabKeyId,
                EabHmacKey = hmac,
                PreferredChain = issuer.PreferredChain,
                DefaultKeyType = issuer.KeyType,
            };
            issuers.Add(new AcmeIssuer(settings, CreateHttpClient(issuer), store, cipher, solvers, time, loggers.CreateLogger<AcmeIssuer>()));
        }

        return issuers;
    }

    private static IDnsChallengeProvider CreateDnsProvider(AcmeIssuerOptions issuer, ILoggerFactory loggers, TimeProvider time)
    {
        var dns = issuer.Dns!;
        // Explicit nameservers take the configured port unless they name one; without them, rfc2136 checks its own
        // server and exec finds the zone's NS records.
        var nameservers = dns.Nameservers.Select(n => dns.NameserverPort is { } port && !n.Contains(':', StringComparison.Ordinal) ? $"{n}:{port}" : n).ToList();
        var visibility = new DnsVisibilityOptions { Nameservers = nameservers, AuthoritativePort = dns.NameserverPort ?? 53 };
        if (dns.Type == "exec")
        {
            return new ExecHookProvider(new ExecHookOptions { Command = dns.Command[0], Arguments = [.. dns.Command.Skip(1)], Visibility = visibility }, loggers.CreateLogger<ExecHookProvider>(), time);
        }

        var (secret, source) = KeyProviders.ReadSecret(issuer.ConfigPath + ":dns", dns.SecretEnvironmentVariable, dns.SecretFile, Environment.GetEnvironmentVariable, "TSIG secret");
        try
        {
            var key = Convert.FromBase64String(Encoding.ASCII.GetString(secret).Trim());
            return new Rfc2136Provider(
                new Rfc2136Options
                {
                    Server = dns.Server!, Zone = dns.Zone, KeyName = dns.KeyName!, Secret = key, Visibility = nameservers.Count > 0 ? visibility : null,
                    Algorithm = dns.Algorithm == "hmac-sha512" ? TsigAlgorithm.HmacSha512 : TsigAlgorithm.HmacSha256,
                },
                loggers.CreateLogger<Rfc2136Provider>(),
                time);
        }
        catch (FormatException)
        {
            throw new MasterKeyException($"{issuer.ConfigPath}:dns: the TSIG secret from {source} is not base64.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>An HTTP client for one CA: the system's trust, or only the configured CA bundle.</summary>
    private static HttpClient CreateHttpClient(AcmeIssuerOptions issuer)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), ConnectTimeout = TimeSpan.FromSeconds(10) };
        if (issuer.CaBundle is { } bundle)
        {
            var roots = new X509Certificate2Collection();
            try
            {
                roots.ImportFromPemFile(bundle);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
            {
                throw new MasterKeyException($"{issuer.ConfigPath}:caBundle: cannot read '{bundle}': {ex.Message}", ex);
            }

            if (roots.Count == 0)
            {
                throw new MasterKeyException($"{issuer.ConfigPath}:caBundle: '{bundle}' holds no certificate.");
            }

            var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            policy.CustomTrustStore.AddRange(roots);
            handler.SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy };
        }

        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Holds the CA back until this instance's edge presents the challenge (its mirror saw the record).</summary>
    private static async Task WaitUntilPresentedAsync(TlsAlpnResponder responder, string host, CancellationToken cancellationToken)
    {
        for (var i = 0; i < 500 && !responder.TryGet(host, out _); i++)
        {
            await Task.Delay(10, cancellationToken);
        }
    }
}
