using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.Edge.Tls;

/// <summary>
/// One parsed instance per distinct intermediate certificate, shared by every served certificate whose chain holds it:
/// thousands of certificates from one CA then cost one parse (about 300 µs with OpenSSL 3.0, which decodes the public
/// key) and one copy in memory (about 6 KiB) instead of one each. Entries are weak: an intermediate no prepared
/// certificate uses any more is left to the garbage collector, and its entry is dropped by a later sweep. Shared
/// instances are never disposed by their users.
/// </summary>
internal sealed class IntermediatePool
{
    private const int FirstSweepAt = 64;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, WeakReference<X509Certificate2>> _byDigest = new(StringComparer.Ordinal);
    private int _sweepAt = FirstSweepAt;

    /// <summary>How many intermediates have an entry (live or not yet swept).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byDigest.Count;
            }
        }
    }

    /// <summary>The shared instance for <paramref name="der"/>, parsed on first use. Throws
    /// <see cref="CryptographicException"/> when it is not a certificate.</summary>
    public X509Certificate2 Get(byte[] der)
    {
        var digest = Convert.ToHexString(SHA256.HashData(der));
        lock (_lock)
        {
            if (_byDigest.TryGetValue(digest, out var known) && known.TryGetTarget(out var shared))
            {
                return shared;
            }
        }

        var parsed = X509CertificateLoader.LoadCertificate(der); // outside the lock: it is the slow part
        lock (_lock)
        {
            if (_byDigest.TryGetValue(digest, out var known) && known.TryGetTarget(out var shared))
            {
                parsed.Dispose(); // parsed concurrently by another preparation
                return shared;
            }

            if (_byDigest.Count >= _sweepAt)
            {
                Sweep();
            }

            _byDigest[digest] = new WeakReference<X509Certificate2>(parsed);
            return parsed;
        }
    }

    /// <summary>Drops the entries whose instance was collected. Caller holds the lock.</summary>
    private void Sweep()
    {
        foreach (var (digest, entry) in _byDigest)
        {
            if (!entry.TryGetTarget(out _))
            {
                _byDigest.Remove(digest);
            }
        }

        _sweepAt = Math.Max(FirstSweepAt, 2 * _byDigest.Count);
    }
}
