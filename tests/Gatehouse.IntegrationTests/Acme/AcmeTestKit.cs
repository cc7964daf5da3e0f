using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;
using Gatehouse.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Gatehouse.IntegrationTests.Acme;

/// <summary>The ACME integration test classes run one after the other: each starts its own Pebble, and the timing
/// figures should not compete with another class's issuance for two cores.</summary>
[CollectionDefinition(Name)]
public sealed class AcmeCollection
{
    public const string Name = "ACME against Pebble";
}

/// <summary>One Pebble shared by the tests of a class (<see cref="PebbleOptions"/> defaults, plus what the class asks).</summary>
public class PebbleFixture : IAsyncLifetime
{
    private Pebble? _pebble;

    public Pebble Pebble => _pebble ?? throw new InvalidOperationException("not started");

    protected virtual PebbleOptions Options => new();

    public async Task InitializeAsync() => _pebble = await Pebble.StartAsync(Options);

    public async Task DisposeAsync()
    {
        if (_pebble is not null)
        {
            await _pebble.DisposeAsync();
        }
    }
}

/// <summary>A client, an account key and a session against one Pebble, with the log lines the client wrote.</summary>
public sealed class AcmeTestKit : IDisposable
{
    public AcmeTestKit(Pebble pebble, AcmeClientOptions? options = null, AcmeKeyAlgorithm algorithm = AcmeKeyAlgorithm.Es256, AcmeAccountRegistration? registration = null)
    {
        Pebble = pebble;
        Http = pebble.CreateHttpClient();
        Client = new AcmeClient(Http, pebble.DirectoryUrl, (options ?? new AcmeClientOptions()) with { Logger = new LineLogger(Logs) });
        Key = AcmeAccountKey.Create(algorithm);
        Session = new AcmeAccountSession(Client, Key, registration ?? new AcmeAccountRegistration { Contact = ["mailto:ops@example.test"], TermsOfServiceAgreed = true });
    }

    public Pebble Pebble { get; }

    public HttpClient Http { get; }

    public AcmeClient Client { get; }

    public AcmeAccountKey Key { get; }

    public AcmeAccountSession Session { get; }

    public ConcurrentQueue<string> Logs { get; } = new();

    public IAcmeChallengeSolver Http01 => new ChallTestSrvHttp01Solver(Pebble);

    public IAcmeChallengeSolver Dns01 => new ChallTestSrvDns01Solver(Pebble);

    /// <summary>A name no other test uses (Pebble reuses valid authorizations for the same name).</summary>
    public static string UniqueName(string label = "site") => $"{label}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5))}.example.test";

    /// <summary>Issues a certificate for <paramref name="names"/> with a fresh P-256 key.</summary>
    public async Task<(AcmeCertificateChain Chain, ECDsa Key)> IssueAsync(IReadOnlyList<string> names, IReadOnlyList<IAcmeChallengeSolver>? solvers = null, string? preferredIssuer = null, AcmeAccountSession? session = null)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var chain = await (session ?? Session).IssueCertificateAsync(
            AcmeOrderRequest.ForNames(names), AcmeCsr.Create(key, names), solvers ?? [Http01], preferredIssuer, timeout.Token);
        return (chain, key);
    }

    /// <summary>Whether <paramref name="chain"/> builds from its leaf through its intermediates to <paramref name="root"/>.</summary>
    public static bool BuildsTo(AcmeCertificateChain chain, X509Certificate2 root)
    {
        var certificates = chain.LoadCertificates();
        try
        {
            using var builder = new X509Chain();
            builder.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            builder.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            builder.ChainPolicy.CustomTrustStore.Add(root);
            for (var i = 1; i < certificates.Count; i++)
            {
                builder.ChainPolicy.ExtraStore.Add(certificates[i]);
            }

            return builder.Build(certificates[0]);
        }
        finally
        {
            foreach (var certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    public void Dispose()
    {
        Key.Dispose();
        Http.Dispose();
    }

    private sealed class LineLogger(ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{eventId.Id} {formatter(state, exception)}");
    }
}
