using System.Collections.Concurrent;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

public sealed class AcmeNoncePoolTests
{
    [Fact]
    public void Add_BeyondCapacity_DropsTheOldest()
    {
        var pool = new AcmeNoncePool(capacity: 3);

        foreach (var nonce in new[] { "a", "b", "c", "d", "e" })
        {
            pool.Add(nonce);
        }

        Assert.Equal(3, pool.Count);
        Assert.True(pool.TryTake(out var first));
        Assert.Equal("c", first);
    }

    [Fact]
    public void TryTake_Concurrently_EveryNonceHandedOutOnce()
    {
        var pool = new AcmeNoncePool(capacity: 10_000);
        for (var i = 0; i < 10_000; i++)
        {
            pool.Add("n" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var taken = new ConcurrentBag<string>();
        Parallel.For(0, 8, _ =>
        {
            while (pool.TryTake(out var nonce))
            {
                taken.Add(nonce);
            }
        });

        Assert.Equal(10_000, taken.Count);
        Assert.Equal(10_000, taken.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(0, pool.Count);
    }
}
