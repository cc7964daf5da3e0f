using System.Net;
using Gatehouse.Admin;
using Gatehouse.Certificates;
using Gatehouse.Challenges;
using Gatehouse.Edge;
using Gatehouse.Edge.Challenges;
using Gatehouse.Edge.Passthrough;
using Gatehouse.Edge.Routing;
using Gatehouse.Edge.Tls;
using Gatehouse.Edge.Tls.Native;
using Gatehouse.Keys;
using Gatehouse.Sites;
using Gatehouse.Storage;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;

namespace Gatehouse.Hosting;

/// <summary>
/// The composition root: opens the store and keys, wires the certificate manager, the edge and the admin API into
/// one Kestrel server, and keeps the config file's sites in the store.
/// </summary>
public sealed class GatehouseServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IStore _store;
    private readonly KeyRing _keyRing;
    private readonly Dictionary<string, IMasterKeyProvider> _keyProviders;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _background = [];

    private GatehouseServer(WebApplication app, IStore store, KeyRing keyRing, Dictionary<string, IMasterKeyProvider> keyProviders, CertificateCache cache, GatehouseOptions options)
    {
        _app = app;
        _store = store;
        _keyRing = keyRing;
        _keyProviders = keyProviders;
        Cache = cache;
        Options = options;
    }

    public GatehouseOptions Options { get; }

    public CertificateCache Cache { get; }

    public IStore Store => _store;

    /// <summary>The master key version this instance seals new secrets with.</summary>
    internal uint ActiveKeyVersion => _keyRing.Active.Version;

    /// <summary>Completes when the server stops (by <see cref="StopAsync"/> or a signal).</summary>
    public Task Stopped => _app.WaitForShutdownAsync();

    /// <summary>Starts everything; returns once listeners are bound, the local CA exists and the mirrors are loaded.</summary>
    /// <param name="options">Validated options.</param>
    /// <param name="configuration">The configuration to re-read when the config file changes; null disables watching.</param>
    /// <param name="configureLogging">Adds logging providers (tests capture logs).</param>
    /// <param name="cancellationToken">Aborts start-up.</param>
    public static Task<GatehouseServer> StartAsync(GatehouseOptions options, GatehouseConfiguration? configuration = null, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default) =>
        // Everything the server starts (mirrors, watchers, the election, start-up itself) continues on the thread
        // pool, never on a socket's I/O thread; the caller's own synchronization context is left as it was.
        ControlPlane.Run(() => StartInControlPlaneAsync(options, configuration, configureLogging, cancellationToken));

    private static async Task<GatehouseServer> StartInControlPlaneAsync(GatehouseOptions options, GatehouseConfiguration? configuration, Action<ILoggingBuilder>? configureLogging, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        // An edge parses HTTP/1.1 strictly (RFC 9112 §2.2): a bare LF ends no line. Kestrel accepts one by default,
        // and a proxy in front of the edge that reads it differently could then disagree on where a request ends.
        AppContext.SetSwitch("Microsoft.AspNetCore.Server.Kestrel.DisableHttp1LineFeedTerminators", true);

        // The edge forwards requests; it does not start traces of its own. Without this, every proxied request runs
        // through HttpClient's diagnostics handler, which starts an Activity and writes traceparent headers to the
        // backend (about 6 % of the edge's CPU per keep-alive request in the profile in docs/edge-modes.md).
        AppContext.SetSwitch("System.Net.Http.EnableActivityPropagation", false);
        // The content root is the data directory, and the host's default appsettings.json source would watch it for
        // changes: one inotify event per SQLite write, handled by a FileSystemWatcher thread (1 % of the CPU in the
        // ACME profile, bench/acme). Gatehouse reads no appsettings.json, so nothing is watched.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"], ContentRootPath = options.DataDirectory, EnvironmentName = Environments.Production });
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(options.LogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Hosting writes only per-request Information/Debug lines, but while any of its levels is on it starts an
        // Activity per request for log scopes (about 2 % of the edge's CPU per keep-alive request).
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        builder.Logging.AddFilter("Yarp.ReverseProxy.Forwarder.HttpForwarder", LogLevel.Error); // BackendErrorLog says it in one line
        builder.Logging.AddFilter("Yarp.ReverseProxy.LoadBalancing.LoadBalancingMiddleware", LogLevel.Error); // 503 "no backend available": per request
        builder.Logging.AddFilter("Yarp.ReverseProxy.Forwarder.ForwarderMiddleware", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error); // keys live in memory only
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        if (configureLogging is null)
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
                o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
            });
        }
        else
        {
            configureLogging(builder.Logging);
        }

        var time = TimeProvider.System;
        var (store, providers, keyRing) = await OpenStoreAndKeysAsync(options, time, cancellationToken);
        try
        {
            return await ComposeAndStartAsync(builder, options, configuration, store, providers, keyRing, time, cancellationToken);
        }
        catch
        {
            await store.DisposeAsync();
            keyRing.Dispose();
            DisposeAll(providers);
            throw;
        }
    }

    /// <summary>Opens the store, the configured key providers and the key ring (created on first start). Used by
    /// <c>serve</c> and by the <c>keys</c> commands, which work on the store directly.</summary>
    /// <exception cref="MasterKeyException">A provider or key version cannot be opened; nothing stays open.</exception>
    internal static async Task<(IStore Store, Dictionary<string, IMasterKeyProvider> Providers, KeyRing Ring)> OpenStoreAndKeysAsync(GatehouseOptions options, TimeProvider time, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var keys = options.EffectiveKeys;
        var providers = KeyProviders.Open(keys);
        IStore? store = null;
        try
        {
            store = Stores.Open(options, time);
            var ring = await KeyRingStore.OpenOrCreateAsync(store, providers, keys.Provider, time, cancellationToken);
            return (store, providers, ring);
        }
        catch
        {
            if (store is not null)
            {
                await store.DisposeAsync();
            }

            DisposeAll(providers);
            throw;
        }
    }

    /// <summary>Completes once the host has started: hosted services and the Kestrel listeners.</summary>
    private static Task Started(IHostApplicationLifetime lifetime)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        return started.Task;
    }

    private static void DisposeAll(Dictionary<string, IMasterKeyProvider> providers)
    {
        foreach (var provider in providers.Values)
        {
            provider.Dispose();
        }
    }

    private static async Task<GatehouseServer> ComposeAndStartAsync(WebApplicationBuilder builder, GatehouseOptions options, GatehouseConfiguration? configuration, IStore store, Dictionary<string, IMasterKeyProvider> providers, KeyRing keyRing, TimeProvider time, CancellationToken cancellationToken)
    {
        var cipher = new EnvelopeCipher(keyRing);
        // Core objects are built here, explicitly, and handed to ASP.NET as instances.
        var sites = new SiteRepository(store);
        var routes = new SiteRoutes();
        var services = builder.Services;
        services.AddSingleton(time);
        services.AddSingleton<IStore>(store);
        services.AddSingleton(cipher);
        services.AddSingleton(keyRing);
        // One elected instance does the scheduled work (renewals, key rotation and rewrap) of all instances sharing
        // the store; work a site asks for goes to whichever instance takes the certificate's lock first.
        // Unique per server, also for several servers in one process (tests): a certificate manager tells its own
        // locks from other instances' by this id.
        var instanceId = $"{Environment.MachineName}/{Environment.ProcessId}/{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))}";
        services.AddSingleton(sp => new StoreElection(store, "maintenance", instanceId, options.LockTtl, time, sp.GetRequiredService<ILogger<StoreElection>>()));
        services.AddSingleton(sp => new KeyMaintenanceOptions
        {
            Provider = options.EffectiveKeys.Provider,
            RotationPeriod = options.EffectiveKeys.RotationPeriod,
            LockTtl = options.LockTtl,
            InstanceId = instanceId,
            Leadership = sp.GetRequiredService<StoreElection>(),
        });
        services.AddHostedService<KeyMaintenance>();
        services.AddSingleton(sp => new StoreMirror<KeyRingRecord>(store, StoreKeys.KeyRing, CoreJson.Deserialize<KeyRingRecord>, sp.GetRequiredService<ILogger<StoreMirror<KeyRingRecord>>>()));
        services.AddSingleton(sites);
        services.AddSingleton(routes);
        services.AddSingleton<IProxyConfigProvider>(routes);
        services.AddSingleton(options.LocalCa);
        services.AddSingleton<LocalCertificateAuthority>();
        services.AddSingleton<ICertificateIssuer>(sp => sp.GetRequiredService<LocalCertificateAuthority>());
        services.AddSingleton(sp => AcmeIssuers.Create(options, store, cipher, sp.GetRequiredService<TlsAlpnResponder>(), time, sp.GetRequiredService<ILoggerFactory>()));
        foreach (var index in Enumerable.Range(0, options.AcmeIssuers.Count))
        {
            services.AddSingleton<ICertificateIssuer>(sp => sp.GetRequiredService<List<AcmeIssuer>>()[index]);
        }

        services.AddSingleton<CertificateCache>();
        services.AddSingleton(sp => new StoreMirror<SiteDefinition>(store, StoreKeys.SitesPrefix, CoreJson.Deserialize<SiteDefinition>, sp.GetRequiredService<ILogger<StoreMirror<SiteDefinition>>>()));
        services.AddSingleton(sp => new StoreMirror<CertificateRecord>(store, StoreKeys.CertificatesPrefix, CoreJson.Deserialize<CertificateRecord>, sp.GetRequiredService<ILogger<StoreMirror<CertificateRecord>>>()));
        services.AddSingleton(sp => new CertificateManagerOptions
        {
            InternalCertificates = [AdminCertificate(options.Admin)],
            MaxConcurrentIssuances = options.MaxConcurrentIssuances,
            LockTtl = options.LockTtl,
            InstanceId = instanceId,
            Leadership = sp.GetRequiredService<StoreElection>(),
            ListenersReady = Started(sp.GetRequiredService<IHostApplicationLifetime>()),
        });
        services.AddHostedService<CertificateManager>();
        services.AddSingleton<TlsAlpnResponder>();
        services.AddSingleton(sp => new StoreMirror<TlsAlpnChallengeRecord>(store, StoreKeys.TlsAlpn01Prefix, CoreJson.Deserialize<TlsAlpnChallengeRecord>, sp.GetRequiredService<ILogger<StoreMirror<TlsAlpnChallengeRecord>>>()));
        services.AddSingleton(sp => new PassthroughRelay(new PassthroughOptions { IdleTimeout = options.Edge.PassthroughIdleTimeout }, time, sp.GetRequiredService<ILogger<PassthroughRelay>>()));
        services.AddSingleton(sp => new SniGate(
            sp.GetRequiredService<CertificateCache>(), sp.GetRequiredService<ILogger<SniGate>>(), options.Edge.HandshakeTimeout, sp.GetRequiredService<TlsAlpnResponder>(),
            routes, sp.GetRequiredService<PassthroughRelay>(), sp.GetRequiredService<SiteTlsPolicies>(), options.Edge.DefaultSite));
        services.AddSingleton<SiteTlsPolicies>();
        // The edge's TLS engine (config edge:tlsEngine): OpenSSL with one shared context where it can run,
        // .NET's SslStream otherwise and always for sites that ask for client certificates; see docs/edge-modes.md.
        var openSslTls = options.Edge.TlsEngine == EdgeTlsEngine.OpenSsl && OpenSslTlsMiddleware.IsAvailable;
        if (openSslTls)
        {
            services.AddSingleton(sp => new OpenSslTlsMiddleware(options.Edge.HandshakeTimeout, sp.GetRequiredService<ILogger<OpenSslTlsMiddleware>>()));
        }

        services.AddReverseProxy();
        // Re-encrypt sites' backend TLS (SNI, CA bundle, client certificate), the active health policy with both
        // thresholds and the passive one; see Edge/Routing/BackendHttpClientFactory.cs, BackendHealthPolicy.cs.
        services.AddSingleton<Yarp.ReverseProxy.Forwarder.IForwarderHttpClientFactory>(sp => new BackendHttpClientFactory(routes, cipher, sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<Yarp.ReverseProxy.Health.IActiveHealthCheckPolicy, BackendHealthPolicy>();
        services.AddSingleton<Yarp.ReverseProxy.Health.IPassiveHealthCheckPolicy, BackendFailurePolicy>();

        // YARP registers Data Protection (for affinity cookies, unused here); keep its keys in memory so that no key
        // is ever written to disk in plaintext.
        services.Configure<KeyManagementOptions>(o => o.XmlRepository = new InMemoryXmlRepository());
        services.AddRouting();

        if (SocketCompletions.RunInline)
        {
            // The runtime completes socket operations on its I/O threads (edge:socketCompletions, set by `serve`
            // before any socket exists); Kestrel then runs each connection there too instead of queueing it again.
            builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            kestrel.Listen(options.Edge.Address, options.Edge.HttpsPort, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                var gate = kestrel.ApplicationServices.GetRequiredService<SniGate>();
                listen.Use(next => connection => gate.OnConnectionAsync(connection, next));
                var openSsl = openSslTls ? kestrel.ApplicationServices.GetRequiredService<OpenSslTlsMiddleware>() : null;
                if (openSsl is not null)
                {
                    listen.Use(next => connection => openSsl.OnConnectionAsync(connection, next));
                }

                listen.UseHttps(SniGate.HandshakeOptions(options.Edge.HandshakeTimeout));
                listen.Use(next => connection => SniGate.EndAcmeTlsAlpnAsync(connection, next));
                if (openSsl is not null)
                {
                    listen.Use(openSsl.AfterTls); // where the connections OpenSSL terminated continue
                }

                Tag(listen, ListenerRole.Https);
            });
            kestrel.Listen(options.Edge.Address, options.Edge.HttpPort, listen =>
            {
                listen.Protocols = HttpProtocols.Http1;
                Tag(listen, ListenerRole.Http);
            });
            kestrel.Listen(options.Admin.Address, options.Admin.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                var cache = kestrel.ApplicationServices.GetRequiredService<CertificateCache>();
                listen.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.TlsHandshakeCallbackOptions
                {
                    // Before the admin certificate exists (the first moments of a first start) the handshake fails
                    // the way a TLS failure does, which Kestrel logs at Debug, not as an unhandled error.
                    OnConnection = _ => ValueTask.FromResult(cache.GetInternal(AdminCertificateId)?.Options
                        ?? throw new System.Security.Authentication.AuthenticationException("The admin certificate is not issued yet.")),
                });
                Tag(listen, ListenerRole.Admin);
            });
            if (options.WelcomePort is { } welcomePort)
            {
                kestrel.Listen(IPAddress.Loopback, welcomePort, listen => Tag(listen, ListenerRole.Welcome));
            }
        });

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Gatehouse");
        if (store is Gatehouse.Storage.Etcd.EtcdStore etcd)
        {
            etcd.UseLogger(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<Gatehouse.Storage.Etcd.EtcdStore>());
        }
        var cache = app.Services.GetRequiredService<CertificateCache>();
        var siteMirror = app.Services.GetRequiredService<StoreMirror<SiteDefinition>>();
        var certificateMirror = app.Services.GetRequiredService<StoreMirror<CertificateRecord>>();
        var localCa = app.Services.GetRequiredService<LocalCertificateAuthority>();
        var server = new GatehouseServer(app, store, keyRing, providers, cache, options);
        try
        {
            await server.StartComponentsAsync(configuration, routes, sites, siteMirror, certificateMirror, localCa, logger, cancellationToken);
            return server;
        }
        catch
        {
            // Nothing half-started stays behind: listeners, mirrors and watchers stop; the caller closes the store.
            await server.StopAsync();
            await app.DisposeAsync();
            throw;
        }
    }

    private async Task StartComponentsAsync(GatehouseConfiguration? configuration, SiteRoutes routes, SiteRepository sites, StoreMirror<SiteDefinition> siteMirror, StoreMirror<CertificateRecord> certificateMirror, LocalCertificateAuthority localCa, ILogger logger, CancellationToken cancellationToken)
    {
        // The local CA and the admin token exist before anything listens.
        var root = await localCa.EnsureCreatedAsync(cancellationToken);
        await WriteRootAsync(Options.LocalCaRootPath, root.ExportCertificatePem(), cancellationToken);
        var token = await AdminToken.EnsureAsync(_store, Options.AdminTokenPath, message => HostingLog.AdminTokenReplaced(logger, message), cancellationToken);

        // Desired state from the config file goes into the store; from there everything flows one way.
        await SyncConfigSitesAsync(Options.Sites, logger, cancellationToken);

        // Rotations and retirements made by another instance or the CLI reach this one's key ring.
        var ringMirror = _app.Services.GetRequiredService<StoreMirror<KeyRingRecord>>();
        ringMirror.Subscribe(snapshot => ApplyKeyRing(snapshot, logger));
        _background.Add(ringMirror.RunAsync(_stopping.Token));
        var challengeMirror = _app.Services.GetRequiredService<StoreMirror<TlsAlpnChallengeRecord>>();
        challengeMirror.Subscribe(_app.Services.GetRequiredService<TlsAlpnResponder>().Apply);
        _background.Add(challengeMirror.RunAsync(_stopping.Token));
        var tlsPolicies = _app.Services.GetRequiredService<SiteTlsPolicies>();
        siteMirror.Subscribe(tlsPolicies.Apply);
        siteMirror.Subscribe(routes.Apply);
        certificateMirror.Subscribe(Cache.Apply);
        _background.Add(siteMirror.RunAsync(_stopping.Token));
        _background.Add(certificateMirror.RunAsync(_stopping.Token));
        _background.Add(_app.Services.GetRequiredService<StoreElection>().RunAsync(_stopping.Token));
        await Task.WhenAll(siteMirror.Loaded, certificateMirror.Loaded).WaitAsync(cancellationToken);

        var admin = new AdminContext(_store, sites, Cache, localCa, Options.IssuerNames,
            () => siteMirror.Loaded.IsCompleted && certificateMirror.Loaded.IsCompleted && Cache.GetInternal(AdminCertificateId) is not null)
        {
            AcmeIssuers = _app.Services.GetRequiredService<List<AcmeIssuer>>().ToDictionary(i => i.Name, StringComparer.Ordinal),
            Cipher = _app.Services.GetRequiredService<EnvelopeCipher>(),
        };
        var plainHttp = new PlainHttpResponder(_store, Options.Edge.PublicHttpsPort ?? Options.Edge.HttpsPort);

        _app.MapWhen(c => Role(c) == ListenerRole.Admin, branch =>
        {
            branch.Use(async (context, next) =>
            {
                await ControlPlane.Enter(); // sealing, key generation, store writes: never on an I/O thread
                await next(context);
            });
            branch.Use((context, next) => AdminApi.GuardAsync(context, next, token));
            branch.UseRouting();
            branch.UseEndpoints(endpoints => AdminApi.Map(endpoints, admin));
        });
        _app.MapWhen(c => Role(c) == ListenerRole.Http, branch => branch.Run(plainHttp.HandleAsync));
        _app.MapWhen(c => Role(c) == ListenerRole.Welcome, branch => branch.Run(WelcomeBackend.HandleAsync));
        _app.Use((context, next) => EdgeMiddleware.RequireHostOfNegotiatedSite(context, next, routes));
        _app.Use((context, next) => SiteTlsMiddleware.ApplyAsync(context, next, tlsPolicies));
        _app.UseRouting();
        var proxyState = _app.Services.GetRequiredService<IProxyStateLookup>();
        var backendFailures = _app.Services.GetServices<Yarp.ReverseProxy.Health.IPassiveHealthCheckPolicy>().OfType<BackendFailurePolicy>().Single();
        var backendErrors = new BackendErrorLog(_app.Services.GetRequiredService<ILogger<BackendErrorLog>>());
        _app.MapReverseProxy(proxy =>
        {
            proxy.Use((context, next) => EdgeMiddleware.RouteToSite(context, next, routes, proxyState));
            proxy.Use(EdgeMiddleware.DescribeProxyErrors);
            proxy.Use(backendErrors.InvokeAsync);
            proxy.UseLoadBalancing();
            proxy.Use((context, next) => backendFailures.InvokeAsync(context, next, proxyState));
        });

        if (configuration?.ConfigPath is not null)
        {
            _background.Add(ConfigWatcher.RunAsync(configuration, this, logger, _stopping.Token));
        }

        // Loading a large store (every record read and mirrored, the tables built) leaves garbage and a first-generation
        // budget sized for that burst, which the GC would keep committed while the edge idles. One compacting collection
        // returns it before the listeners open, so no connection waits for it (about 0.1 s per 10,000 sites); a small
        // store leaves too little to be worth a full collection of the process.
        if (Cache.Count >= TrimAfterLoadingSites)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }

        await _app.StartAsync(cancellationToken);

        // The admin listener's certificate comes from the manager like every other; start-up is done when it is there.
        var deadline = DateTime.UtcNow + AdminCertificateWait;
        while (Cache.GetInternal(AdminCertificateId) is null)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The admin listener's certificate was not issued within {AdminCertificateWait.TotalSeconds:0} s; the log says why.");
            }

            await Task.Delay(10, cancellationToken);
        }

        if (Options.Edge.TlsEngine == EdgeTlsEngine.OpenSsl && OpenSslTlsMiddleware.Unavailable is { } unavailable)
        {
            HostingLog.TlsEngineUnavailable(logger, unavailable);
        }
        else
        {
            HostingLog.TlsEngine(logger, Options.Edge.TlsEngine == EdgeTlsEngine.OpenSsl
                ? $"{OpenSslTlsMiddleware.Version}, one context for every certificate (sites that ask for client certificates: .NET's SslStream)"
                : ".NET's SslStream");
        }

        if (SocketCompletions.RunInline)
        {
            HostingLog.SocketCompletions(logger, "inline, on the runtime's I/O threads");
        }
        else
        {
            var why = Options.Edge.SocketCompletions == EdgeSocketCompletions.Pool ? "edge:socketCompletions pool"
                : SocketCompletions.Outcome is not { } outcome ? "edge:socketCompletions inline is applied by `gatehouse serve`, before its first socket"
                : outcome == SocketCompletions.Requested ? "edge:socketCompletions inline came after this process had used a socket"
                : outcome;
            HostingLog.SocketCompletions(logger, $"on the thread pool ({why})");
        }

        HostingLog.Started(logger, Options.Edge.Address.ToString(), Options.Edge.HttpsPort, Options.Edge.HttpPort, Options.Admin.Port, Options.DataDirectory);
    }

    private void ApplyKeyRing(MirrorSnapshot<KeyRingRecord> snapshot, ILogger logger)
    {
        if (!snapshot.Items.TryGetValue(StoreKeys.KeyRing, out var item))
        {
            return;
        }

        try
        {
            var before = _keyRing.Active.Version;
            _keyRing.Apply(item.Value, item.ModRevision);
            if (_keyRing.Active.Version != before)
            {
                HostingLog.KeyRingChanged(logger, _keyRing.Active.Version, item.ModRevision);
            }
        }
        catch (MasterKeyException ex)
        {
            HostingLog.KeyRingUnusable(logger, ex.Message);
        }
    }

    private static readonly TimeSpan AdminCertificateWait = TimeSpan.FromSeconds(30);

    /// <summary>From this many site certificates loaded at start-up on, the start-up garbage is collected before the
    /// listeners open.</summary>
    private const int TrimAfterLoadingSites = 1_000;

    /// <summary>The admin listener's own certificate, from the local CA.</summary>
    public const string AdminCertificateId = "_admin";

    internal static CertificateDemand AdminCertificate(AdminOptions admin)
    {
        var names = new List<string> { "localhost", "127.0.0.1", "::1" };
        if (!admin.Address.Equals(IPAddress.Any) && !admin.Address.Equals(IPAddress.IPv6Any) && !names.Contains(admin.Address.ToString()))
        {
            names.Add(admin.Address.ToString());
        }

        return new CertificateDemand(AdminCertificateId, names, [LocalCertificateAuthority.IssuerName]);
    }

    /// <summary>Puts the config file's sites into the store; a conflict is logged and that site skipped.</summary>
    internal async Task SyncConfigSitesAsync(IReadOnlyList<(SiteDefinition Site, string Path)> desired, ILogger logger, CancellationToken cancellationToken)
    {
        var errors = await new SiteRepository(_store).SyncConfigSitesAsync(desired, cancellationToken);
        foreach (var error in errors)
        {
            HostingLog.ConfigSiteRejected(logger, Path.GetFileName(Options.ConfigPath) ?? "config", error.Path, error.Message);
        }
    }

    private static async Task WriteRootAsync(string path, string pem, CancellationToken cancellationToken)
    {
        if (File.Exists(path) && await File.ReadAllTextAsync(path, cancellationToken) == pem)
        {
            return;
        }

        var temp = path + ".new";
        await File.WriteAllTextAsync(temp, pem, cancellationToken);
        File.Move(temp, path, overwrite: true);
    }

    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _app.StopAsync();
        await _stopping.CancelAsync();
        await Task.WhenAll(_background).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _app.DisposeAsync();
        await _store.DisposeAsync();
        _keyRing.Dispose();
        DisposeAll(_keyProviders);
        _stopping.Dispose();
    }

    private static void Tag(ListenOptions listen, ListenerRole role)
    {
        var feature = new ListenerRoleFeature(role);
        listen.Use(next => connection =>
        {
            connection.Features.Set(feature);
            return next(connection);
        });
    }

    private static ListenerRole Role(HttpContext context) => context.Features.Get<ListenerRoleFeature>()?.Role ?? ListenerRole.Https;

    internal enum ListenerRole
    {
        Https,
        Http,
        Admin,
        Welcome,
    }

    internal sealed record ListenerRoleFeature(ListenerRole Role);
}

internal static partial class HostingLog
{
    [LoggerMessage(EventId = 6010, Level = LogLevel.Information, Message = "Key ring changed: master key version {Version} is active (store revision {Revision})")]
    public static partial void KeyRingChanged(ILogger logger, uint version, long revision);

    [LoggerMessage(EventId = 6011, Level = LogLevel.Error, Message = "The key ring in the store cannot be used here; keeping the previous one: {Reason}")]
    public static partial void KeyRingUnusable(ILogger logger, string reason);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Gatehouse is serving: HTTPS on {Address}:{HttpsPort}, HTTP on {Address}:{HttpPort}, admin API on port {AdminPort}; data in {DataDirectory}")]
    public static partial void Started(ILogger logger, string address, int httpsPort, int httpPort, int adminPort, string dataDirectory);

    [LoggerMessage(EventId = 6012, Level = LogLevel.Warning, Message = "The OpenSSL TLS engine (edge:tlsEngine openssl) cannot run here, so .NET's TLS serves the edge: {Reason}")]
    public static partial void TlsEngineUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 6013, Level = LogLevel.Information, Message = "The edge terminates TLS with {Engine}")]
    public static partial void TlsEngine(ILogger logger, string engine);

    [LoggerMessage(EventId = 6014, Level = LogLevel.Information, Message = "Socket completions run {Where}")]
    public static partial void SocketCompletions(ILogger logger, string where);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Error, Message = "{File}: {Path}: {Message}; this site is not applied")]
    public static partial void ConfigSiteRejected(ILogger logger, string file, string path, string message);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "{Message}")]
    public static partial void AdminTokenReplaced(ILogger logger, string message);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Error, Message = "The changed config file is refused; the last good config stays in force: {Error}")]
    public static partial void ConfigRefused(ILogger logger, string error);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Information, Message = "Applied the changed config file: {Sites} sites")]
    public static partial void ConfigApplied(ILogger logger, int sites);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Warning, Message = "The config file changed {Setting}; that takes effect at the next restart")]
    public static partial void RestartNeeded(ILogger logger, string setting);
}
