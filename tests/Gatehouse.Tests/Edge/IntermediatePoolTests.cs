using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Edge.Tls;

namespace Gatehouse.Tests.Edge;

/// <summary>The pool of parsed intermediates: one instance per distinct certificate, weakly held.</summary>
public sealed class IntermediatePoolTests
{
    [Fact]
    public void Get_SameDer_GivesTheSameInstance_OtherDerAnother()
    {
        var pool = new IntermediatePool();
        var first = Der("CN=Pool One");
        var second = Der("CN=Pool Two");

        var a = pool.Get(first);
        var b = pool.Get((byte[])first.Clone());
        var c = pool.Get(second);

        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal(first, a.RawData);
        Assert.Equal(second, c.RawData);
        Assert.Equal(2, pool.Count);
    }

    [Fact]
    public void Get_NotACertificate_ThrowsAndAddsNothing()
    {
        var pool = new IntermediatePool();
        Assert.ThrowsAny<CryptographicException>(() => pool.Get([0x30, 0x03, 0x02, 0x01, 0x01]));
        Assert.Equal(0, pool.Count);
    }

    [Fact]
    public void Get_AfterTheUsersAreGone_SweepsCollectedEntriesAndParsesAgain()
    {
        var pool = new IntermediatePool();
        var kept = pool.Get(Der("CN=Pool Kept"));
        var dropped = Der("CN=Pool Dropped");
        var droppedReference = FillAndForget(pool, dropped, 62); // 64 entries with "kept": the next new one sweeps first
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(droppedReference.TryGetTarget(out _));

        var again = pool.Get(dropped); // its entry's instance was collected: parsed anew, and the sweep ran
        Assert.Equal(dropped, again.RawData);
        Assert.Same(kept, pool.Get(kept.RawData));
        Assert.Equal(2, pool.Count);
    }

    /// <summary>Adds <paramref name="count"/> distinct certificates and <paramref name="der"/>, keeping none of them
    /// (not inlined, so no local of this frame keeps them alive).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<X509Certificate2> FillAndForget(IntermediatePool pool, byte[] der, int count)
    {
        for (var i = 0; i < count; i++)
        {
            pool.Get(Der($"CN=Pool Filler {i}"));
        }

        return new WeakReference<X509Certificate2>(pool.Get(der));
    }

    private static byte[] Der(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        return certificate.RawData;
    }
}
