using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Certificates;
using Gatehouse.Edge.Tls;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Gatehouse.Tests.Edge;

/// <summary>
/// The certificate cache with real envelopes, a real chain and real TLS handshakes through the real SNI gate (over
/// in-memory pipes): the table is built without opening a key, and a certificate is prepared by its first handshake,
/// once. A counting master key says how many data keys were unwrapped.
/// </summary>
public sealed class CertificateCacheTests : IDisposable
{
    private static readonly byte[] InternalErrorAlert = [21, 3, 3, 0, 2, 2, 80];
    private readonly ITestOutputHelper _output;
    private readonly CountingMasterKey _master = new(new SoftwareMasterKey("local-test", 1, RandomNumberGenerator.GetBytes(32)));
    private readonly EnvelopeCipher _cipher;
    private readonly BulkCertificate _chain = BulkCertificate.Create();
    private readonly CollectingLogger<CertificateCache> _log = new();
    private readonly CertificateCache _cache;
    private readonly SniGate _gate;

    public CertificateCacheTests(ITestOutputHelper output)
    {
        _output = output;
        _cipher = new EnvelopeCipher(new MasterKeyRing([_master], _master));
        _cache = new CertificateCache(_cipher, _log);
        _gate = new SniGate(_cache, new CollectingLogger<SniGate>(), TimeSpan.FromSeconds(10));
    }

    public void Dispose()
    {
        _master.Dispose();
        _chain.Dispose();
    }

    [Fact]
    public async Task Apply_100000Records_OpensNoKey_ThenTheFirstHandshakeOpensOneAndTheSecondNone()
    {
        const int count = 100_000;
        var records = new List<CertificateRecord>(count);
        for (var i = 0; i < count; i++)
        {
            records.Add(Record($"h{i}.bulk.test"));
        }

        var snapshot = Snapshot(records, revision: 42);
        var unwrapsBefore = _master.Unwraps;
        var watch = Stopwatch.StartNew();
        _cache.Apply(snapshot);
        _output.WriteLine($"Apply of {count:N0} records: {watch.ElapsedMilliseconds} ms");
        Assert.Equal(0, _master.Unwraps - unwrapsBefore);
        Assert.Equal(count, _cache.Count);
        Assert.Equal(42, _cache.Revision);

        // Applying the same records again keeps every instance and still opens nothing.
        Assert.True(_cache.TryMatch("h77.bulk.test", out var before));
        _cache.Apply(snapshot with { Revision = 43 });
        Assert.True(_cache.TryMatch("h77.bulk.test", out var after));
        Assert.Same(before, after);
        Assert.Equal(0, _master.Unwraps - unwrapsBefore);

        Assert.Equal("CN=*.bulk.test", (await HandshakeAsync("h4242.bulk.test")).Subject);
        Assert.Equal(1, _master.Unwraps - unwrapsBefore);
        Assert.Equal("CN=*.bulk.test", (await HandshakeAsync("H4242.Bulk.Test")).Subject);
        Assert.Equal(1, _master.Unwraps - unwrapsBefore);
        Assert.True(_cache.TryMatch("h4242.bulk.test", out var prepared));
        Assert.True(prepared.Leaf!.HasPrivateKey);
        Assert.True(_cache.TryMatch("h4243.bulk.test", out var cold));
        Assert.Null(cold.Options);
        Assert.Empty(_log.Errors);
    }

    [Fact]
    public async Task Handshake_ConcurrentFirstHandshakesForOneCertificate_PrepareItOnce()
    {
        _cache.Apply(Snapshot([Record("one.bulk.test")], revision: 1));
        var subjects = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => HandshakeAsync("one.bulk.test"))));
        Assert.All(subjects, s => Assert.Equal("CN=*.bulk.test", s.Subject));
        Assert.Equal(1, _master.Unwraps);
    }

    [Fact]
    public async Task Handshake_TamperedSealedKey_IsRefusedWithInternalErrorAndLoggedOnce_UntilTheRecordChanges()
    {
        var good = Record("good.bulk.test");
        var tampered = Record("bad.bulk.test");
        tampered = tampered with { SealedKey = [.. tampered.SealedKey![..^1], (byte)(tampered.SealedKey![^1] ^ 1)] };
        _cache.Apply(Snapshot([good, tampered], revision: 1));
        Assert.Equal(2, _cache.Count);

        for (var attempt = 0; attempt < 3; attempt++)
        {
            Assert.Equal(InternalErrorAlert, await RefusedAsync("bad.bulk.test"));
        }

        Assert.Equal(1, _master.Unwraps); // tried once, remembered
        var error = Assert.Single(_log.Errors);
        Assert.Contains("bad.bulk.test", error, StringComparison.Ordinal);
        Assert.Contains(_chain.Serial, error, StringComparison.Ordinal);
        Assert.True(_cache.TryMatch("bad.bulk.test", out var bad));
        Assert.NotNull(bad.Failure);
        Assert.Equal("CN=*.bulk.test", (await HandshakeAsync("good.bulk.test")).Subject);

        // A status-only rewrite is the same record content: still refused, not tried again.
        _cache.Apply(Snapshot([good, tampered with { LastError = "renewal failed" }], revision: 2));
        Assert.Equal(InternalErrorAlert, await RefusedAsync("bad.bulk.test"));
        Assert.Equal(2, _master.Unwraps);

        // A new sealed key is a changed record: prepared afresh and served.
        _cache.Apply(Snapshot([good, Record("bad.bulk.test")], revision: 3));
        Assert.Equal("CN=*.bulk.test", (await HandshakeAsync("bad.bulk.test")).Subject);
        Assert.Equal(3, _master.Unwraps);
        Assert.Single(_log.Errors);
    }

    [Fact]
    public async Task Handshake_SealedKeyOfAnotherCertificate_IsRefusedAndLoggedWithoutTheKey()
    {
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var record = Record("wrongkey.bulk.test");
        record = record with { SealedKey = _cipher.Seal(StoreKeys.Certificate(record.Id), otherKey.ExportPkcs8PrivateKey()) };
        _cache.Apply(Snapshot([record], revision: 1));

        Assert.Equal(InternalErrorAlert, await RefusedAsync("wrongkey.bulk.test"));

        var error = Assert.Single(_log.Errors);
        Assert.Contains("its sealed key is not the key of its chain's leaf", error, StringComparison.Ordinal);
        Assert.True(_cache.TryMatch("wrongkey.bulk.test", out var served));
        Assert.Null(served.Leaf);
        Assert.Null(served.Intermediates);
    }

    [Fact]
    public async Task Handshake_CertificatesOfOneIssuer_ShareOneParsedIntermediate()
    {
        // The bulk chain is a leaf under a root; here the root is sent along as the chain's second certificate.
        var chainPem = _chain.ChainPem + "\n" + _chain.Root.ExportCertificatePem() + "\n";
        _cache.Apply(Snapshot([Record("one.bulk.test") with { ChainPem = chainPem }, Record("two.bulk.test") with { ChainPem = chainPem }], revision: 1));
        await HandshakeAsync("one.bulk.test");
        await HandshakeAsync("two.bulk.test");

        Assert.True(_cache.TryMatch("one.bulk.test", out var one));
        Assert.True(_cache.TryMatch("two.bulk.test", out var two));
        Assert.NotSame(one, two);
        Assert.NotSame(one.Leaf, two.Leaf);
        var intermediate = Assert.Single(one.Intermediates!);
        Assert.Same(intermediate, Assert.Single(two.Intermediates!));
        Assert.Equal(_chain.Root.RawData, intermediate.RawData);
        Assert.Equal(_chain.ChainPem.Trim(), one.Leaf!.ExportCertificatePem().Trim());
    }

    [Fact]
    public async Task Handshake_NameTheLeafDoesNotCover_IsRefusedWithoutOpeningTheKey()
    {
        _cache.Apply(Snapshot([Record("other.test"), Record("a.b.bulk.test")], revision: 1));
        Assert.Equal(InternalErrorAlert, await RefusedAsync("other.test"));
        Assert.Equal(InternalErrorAlert, await RefusedAsync("a.b.bulk.test")); // a wildcard covers one label only
        Assert.Equal(0, _master.Unwraps);
        Assert.Collection(
            _log.Errors,
            e => Assert.Contains("do not cover other.test", e, StringComparison.Ordinal),
            e => Assert.Contains("do not cover a.b.bulk.test", e, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Apply_ChangedRecord_DropsThePreparedInstance_UnchangedKeepsIt()
    {
        var first = Record("keep.bulk.test");
        var other = Record("swap.bulk.test");
        _cache.Apply(Snapshot([first, other], revision: 1));
        await HandshakeAsync("keep.bulk.test");
        await HandshakeAsync("swap.bulk.test");
        Assert.True(_cache.TryMatch("keep.bulk.test", out var kept));
        Assert.True(_cache.TryMatch("swap.bulk.test", out var swapped));
        Assert.Equal(2, _master.Unwraps);

        // Same content in a new record object (a status update) keeps the prepared instance; a new key does not.
        _cache.Apply(Snapshot([first with { Status = CertificateStatus.Failing, LastError = "x" }, Record("swap.bulk.test")], revision: 2));
        Assert.True(_cache.TryMatch("keep.bulk.test", out var keptNow));
        Assert.True(_cache.TryMatch("swap.bulk.test", out var swappedNow));
        Assert.Same(kept, keptNow);
        Assert.NotSame(swapped, swappedNow);
        Assert.Null(swappedNow.Options);
        Assert.NotNull(swapped.Options); // an in-flight handshake holding the old instance still has its context

        await HandshakeAsync("keep.bulk.test");
        await HandshakeAsync("swap.bulk.test");
        Assert.Equal(3, _master.Unwraps);

        _cache.Apply(Snapshot([first], revision: 3));
        Assert.False(_cache.TryMatch("swap.bulk.test", out _));
        Assert.Equal(1, _cache.Count);
    }

    [Fact]
    public void Apply_InternalCertificate_IsPreparedAtOnce_AndANewerRecordThatCannotBeKeepsTheLastGoodOne()
    {
        var admin = Record("admin.bulk.test", id: "_admin");
        _cache.Apply(Snapshot([admin], revision: 1));
        var served = _cache.GetInternal("_admin");
        Assert.NotNull(served?.Options);
        Assert.Equal(1, _master.Unwraps);
        Assert.False(_cache.TryMatch("admin.bulk.test", out _)); // internal certificates are not served by SNI
        Assert.Equal(0, _cache.Count);

        var broken = admin with { SealedKey = [.. admin.SealedKey![..^1], (byte)(admin.SealedKey![^1] ^ 1)] };
        _cache.Apply(Snapshot([broken], revision: 2));
        _cache.Apply(Snapshot([broken], revision: 3));
        Assert.Same(served, _cache.GetInternal("_admin"));
        Assert.Equal(2, _master.Unwraps); // the broken record was tried once
        Assert.Single(_log.Errors);
    }

    [Fact]
    public async Task Apply_SnapshotWithChangedKeys_UpdatesOnlyThoseAndEndsWhereARebuildEnds()
    {
        var kept = Record("kept.bulk.test");
        var replaced = Record("replaced.bulk.test");
        var removed = Record("removed.bulk.test");
        _cache.Apply(Snapshot([kept, replaced, removed], revision: 1));
        await HandshakeAsync("kept.bulk.test");
        Assert.True(_cache.TryMatch("kept.bulk.test", out var keptInstance));
        Assert.True(_cache.TryMatch("replaced.bulk.test", out var replacedInstance));

        // A status-only update, a new key for one site, one site added and one deleted, named as the changed keys.
        var added = Record("added.bulk.test");
        var renewed = Record("replaced.bulk.test");
        var after = Snapshot([kept with { Status = CertificateStatus.Failing }, renewed, added], revision: 2) with
        {
            ChangedKeys = [.. new[] { kept, replaced, removed, added }.Select(r => StoreKeys.Certificate(r.Id))],
        };
        _cache.Apply(after);

        Assert.True(_cache.TryMatch("kept.bulk.test", out var keptNow));
        Assert.Same(keptInstance, keptNow);
        Assert.True(_cache.TryMatch("replaced.bulk.test", out var replacedNow));
        Assert.NotSame(replacedInstance, replacedNow);
        Assert.Same(renewed, replacedNow.Record);
        Assert.True(_cache.TryMatch("added.bulk.test", out _));
        Assert.False(_cache.TryMatch("removed.bulk.test", out _));
        Assert.Equal(3, _cache.Count);
        Assert.Equal(2, _cache.Revision);
        Assert.Equal("CN=*.bulk.test", (await HandshakeAsync("added.bulk.test")).Subject);

        // The same snapshot applied to an empty cache (a full rebuild) serves the same names with the same records.
        var rebuilt = new CertificateCache(_cipher, new CollectingLogger<CertificateCache>());
        rebuilt.Apply(after with { ChangedKeys = null });
        foreach (var name in new[] { "kept.bulk.test", "replaced.bulk.test", "added.bulk.test", "removed.bulk.test" })
        {
            Assert.Equal(rebuilt.TryMatch(name, out var expected), _cache.TryMatch(name, out var actual));
            Assert.Same(expected?.Record, actual?.Record);
        }
    }

    [Fact]
    public void Apply_ChangedKeys_WithANameClaimedTwice_GivesWhatARebuildGives()
    {
        // Two records claim one name: the later key holds it; when it goes, the earlier one holds it again.
        var first = Record("dup.bulk.test", id: "a-site");
        var second = Record("dup.bulk.test", id: "b-site");
        _cache.Apply(Snapshot([first], revision: 1));
        _cache.Apply(Snapshot([first, second], revision: 2) with { ChangedKeys = [StoreKeys.Certificate("b-site")] });
        Assert.True(_cache.TryMatch("dup.bulk.test", out var holder));
        Assert.Same(second, holder.Record);

        _cache.Apply(Snapshot([first], revision: 3) with { ChangedKeys = [StoreKeys.Certificate("b-site")] });
        Assert.True(_cache.TryMatch("dup.bulk.test", out holder));
        Assert.Same(first, holder.Record);
        Assert.Equal(1, _cache.Count);
    }

    private CertificateRecord Record(string name, string? id = null) => _chain.RecordFor(name, _cipher, id);

    private static MirrorSnapshot<CertificateRecord> Snapshot(IEnumerable<CertificateRecord> records, long revision) =>
        new(ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, records.Select(r => KeyValuePair.Create(StoreKeys.Certificate(r.Id), new MirrorItem<CertificateRecord>(r, revision)))), revision);

    /// <summary>A full TLS handshake through the SNI gate, with the options the cache prepared; returns the leaf the
    /// client accepted (it trusts only the test root).</summary>
    private async Task<X509Certificate2> HandshakeAsync(string serverName)
    {
        var connection = new InMemoryConnection();
        var server = _gate.OnConnectionAsync(connection.Server, async context =>
        {
            var options = context.Features.Get<ServedCertificateFeature>()!.Certificate.Options!;
            await using var tls = new SslStream(connection.ServerStream());
            await tls.AuthenticateAsServerAsync(options);
        });
        await using var client = new SslStream(connection.Client);
        await client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            EnabledSslProtocols = SslProtocols.Tls13,
            CertificateChainPolicy = _chain.TrustOnlyRoot(),
        });
        await server;
        return new X509Certificate2(client.RemoteCertificate!);
    }

    /// <summary>Sends a real ClientHello for <paramref name="serverName"/> and returns what the gate answered.</summary>
    private async Task<byte[]> RefusedAsync(string serverName)
    {
        var connection = new InMemoryConnection();
        await connection.Client.WriteAsync(await ClientHelloTests.CaptureClientHelloAsync(serverName, SslProtocols.Tls12 | SslProtocols.Tls13, null));
        await _gate.OnConnectionAsync(connection.Server, _ => throw new InvalidOperationException("the handshake must not start"));
        return await connection.ReadAllFromServerAsync();
    }
}

/// <summary>Passes through to a real master key and counts the data keys it unwraps.</summary>
internal sealed class CountingMasterKey(IMasterKey inner) : IMasterKey
{
    private int _unwraps;

    public int Unwraps => Volatile.Read(ref _unwraps);

    public string Id => inner.Id;

    public uint Version => inner.Version;

    public byte[] WrapKey(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData) => inner.WrapKey(dataKey, associatedData);

    public bool TryUnwrapKey(ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> associatedData, Span<byte> dataKey)
    {
        Interlocked.Increment(ref _unwraps);
        return inner.TryUnwrapKey(wrappedKey, associatedData, dataKey);
    }

    public void Dispose() => inner.Dispose();
}

/// <summary>Keeps what was logged at error level.</summary>
internal sealed class CollectingLogger<T> : ILogger<T>
{
    private readonly ConcurrentQueue<string> _errors = new();

    public IReadOnlyCollection<string> Errors => [.. _errors];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (logLevel >= LogLevel.Error)
        {
            _errors.Enqueue(formatter(state, exception));
        }
    }
}
