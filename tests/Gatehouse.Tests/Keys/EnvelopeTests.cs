using System.Security.Cryptography;
using Gatehouse.Keys;

namespace Gatehouse.Tests.Keys;

public sealed class EnvelopeTests : IDisposable
{
    private const string RecordKey = "/gatehouse/v1/certs/example.com";
    private readonly SoftwareMasterKey _master = new("local-test", 1, RandomNumberGenerator.GetBytes(32));
    private readonly EnvelopeCipher _cipher;

    public EnvelopeTests() => _cipher = new EnvelopeCipher(new MasterKeyRing([_master], _master));

    public void Dispose() => _master.Dispose();

    [Fact]
    public void Seal_ThenOpen_RoundTrips()
    {
        var secret = RandomNumberGenerator.GetBytes(200);
        var sealedSecret = _cipher.Seal(RecordKey, secret);
        using var opened = _cipher.Open(RecordKey, sealedSecret);
        Assert.Equal(secret, opened.Span.ToArray());
        Assert.False(sealedSecret.AsSpan().IndexOf(secret.AsSpan(0, 16)) >= 0);
    }

    [Fact]
    public void Seal_SameSecretTwice_GivesDifferentEnvelopes()
    {
        var secret = new byte[32];
        Assert.NotEqual(_cipher.Seal(RecordKey, secret), _cipher.Seal(RecordKey, secret));
    }

    [Fact]
    public void Seal_Layout_MatchesTheDocumentedFormat()
    {
        var envelope = _cipher.Seal(RecordKey, new byte[5]);
        Assert.Equal(1, envelope[0]); // format version
        Assert.Equal("local-test".Length, envelope[1]);
        Assert.Equal("local-test"u8.ToArray(), envelope[2..12]);
        Assert.Equal([0, 0, 0, 1], envelope[12..16]); // master key version
        Assert.Equal([0, 60], envelope[16..18]); // wrapped key length: nonce 12 + key 32 + tag 16
        Assert.Equal(18 + 60 + 12 + 16 + 5, envelope.Length);
    }

    [Fact]
    public void Open_AnyFlippedBit_FailsAuthenticationAndNamesTheRecord()
    {
        var envelope = _cipher.Seal(RecordKey, RandomNumberGenerator.GetBytes(48));
        for (var i = 0; i < envelope.Length; i++)
        {
            for (var bit = 0; bit < 8; bit += 3)
            {
                var tampered = (byte[])envelope.Clone();
                tampered[i] ^= (byte)(1 << bit);
                var ex = Assert.Throws<EnvelopeAuthenticationException>(() => _cipher.Open(RecordKey, tampered));
                Assert.Equal(RecordKey, ex.RecordKey);
                Assert.Contains(RecordKey, ex.Message, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Open_EnvelopeMovedToAnotherRecord_Fails()
    {
        var envelope = _cipher.Seal(RecordKey, [1, 2, 3]);
        Assert.Throws<EnvelopeAuthenticationException>(() => _cipher.Open("/gatehouse/v1/certs/other.example", envelope));
    }

    [Fact]
    public void Open_PayloadSpliced_FromAnotherRecordsEnvelope_Fails()
    {
        var mine = _cipher.Seal(RecordKey, new byte[16]);
        var theirs = _cipher.Seal("/gatehouse/v1/certs/other.example", new byte[16]);
        var spliced = (byte[])mine.Clone();
        Array.Copy(theirs, 78, spliced, 78, theirs.Length - 78); // their nonce, tag and ciphertext under my key header
        Assert.Throws<EnvelopeAuthenticationException>(() => _cipher.Open(RecordKey, spliced));
    }

    [Fact]
    public void Open_WithAnotherMasterKeyOfTheSameId_Fails()
    {
        var envelope = _cipher.Seal(RecordKey, [1, 2, 3]);
        using var other = new SoftwareMasterKey("local-test", 1, RandomNumberGenerator.GetBytes(32));
        var cipher = new EnvelopeCipher(new MasterKeyRing([other], other));
        Assert.Throws<EnvelopeAuthenticationException>(() => cipher.Open(RecordKey, envelope));
    }

    [Fact]
    public void Open_UnknownMasterKeyVersion_SaysSo()
    {
        using var v2 = new SoftwareMasterKey("local-test", 2, RandomNumberGenerator.GetBytes(32));
        var envelope = new EnvelopeCipher(new MasterKeyRing([v2], v2)).Seal(RecordKey, [1]);
        var ex = Assert.Throws<EnvelopeAuthenticationException>(() => _cipher.Open(RecordKey, envelope));
        Assert.Contains("version 2 is not in the key ring", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 1 })]
    [InlineData(new byte[] { 2, 3, 65, 66, 67 })]
    [InlineData(new byte[] { 1, 0 })]
    public void Open_Garbage_FailsWithoutCrashing(byte[] garbage)
    {
        Assert.Throws<EnvelopeAuthenticationException>(() => _cipher.Open(RecordKey, garbage));
    }

    [Fact]
    public void Open_TruncatedEnvelopes_AllFail()
    {
        var envelope = _cipher.Seal(RecordKey, new byte[10]);
        for (var length = 0; length < envelope.Length; length++)
        {
            Assert.Throws<EnvelopeAuthenticationException>(() => _cipher.Open(RecordKey, envelope.AsSpan(0, length)));
        }
    }
}

public sealed class EnvelopeBindingTests
{
    [Fact]
    public async Task SealAndOpen_ManyThreadsSharingOneMasterKey_AllRoundTrip()
    {
        using var master = new SoftwareMasterKey("shared", 1, RandomNumberGenerator.GetBytes(32));
        var cipher = new EnvelopeCipher(new MasterKeyRing([master], master));
        var failures = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                var key = $"/gatehouse/v1/certs/{t}-{i}";
                var secret = BitConverter.GetBytes((t * 100_000) + i);
                try
                {
                    using var opened = cipher.Open(key, cipher.Seal(key, secret));
                    if (!opened.Span.SequenceEqual(secret))
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
                catch (CryptographicException)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        })));
        Assert.Equal(0, failures);
    }

    [Fact]
    public void Open_PayloadMovedToAnotherRecord_FailsEvenWhenTheDataKeyUnwraps()
    {
        // A master key that ignores associated data lets the data key unwrap anywhere, so only the payload's own
        // binding to the record key can stop the move.
        using var master = new AssociatedDataIgnoringKey();
        var cipher = new EnvelopeCipher(new MasterKeyRing([master], master));
        var envelope = cipher.Seal("/gatehouse/v1/certs/a.example", [1, 2, 3]);
        using (cipher.Open("/gatehouse/v1/certs/a.example", envelope))
        {
        }

        var ex = Assert.Throws<EnvelopeAuthenticationException>(() => cipher.Open("/gatehouse/v1/certs/b.example", envelope));
        Assert.Contains("payload does not authenticate", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A deliberately weak test key: wraps with no associated data.</summary>
    private sealed class AssociatedDataIgnoringKey : IMasterKey
    {
        private readonly SoftwareMasterKey _inner = new("weak", 1, new byte[32]);

        public string Id => _inner.Id;

        public uint Version => _inner.Version;

        public byte[] WrapKey(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData) => _inner.WrapKey(dataKey, default);

        public bool TryUnwrapKey(ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> associatedData, Span<byte> dataKey) => _inner.TryUnwrapKey(wrappedKey, default, dataKey);

        public void Dispose() => _inner.Dispose();
    }
}
