using System.Collections.Concurrent;

namespace Gatehouse.Acme;

/// <summary>
/// The nonces (RFC 8555 §6.5) one client holds for one server: every <c>Replay-Nonce</c> a response carries goes in,
/// every signed request takes one out. Safe under concurrency; a nonce is handed out at most once. Bounded: when
/// full the oldest is dropped (servers forget old nonces first).
/// </summary>
internal sealed class AcmeNoncePool(int capacity = 64)
{
    private readonly ConcurrentQueue<string> _nonces = new();
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public bool TryTake(out string nonce)
    {
        if (_nonces.TryDequeue(out nonce!))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        return false;
    }

    public void Add(string nonce)
    {
        _nonces.Enqueue(nonce);
        if (Interlocked.Increment(ref _count) > capacity && _nonces.TryDequeue(out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }
}
