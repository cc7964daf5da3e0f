using System.Security.Cryptography;
using System.Text;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Keys.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace Gatehouse.IntegrationTests.Keys;

/// <summary>The PKCS#11 master key provider against a real SoftHSM2 token. Every test disposes its providers, so the
/// module is finalised between tests and each test starts from a fresh C_Initialize.</summary>
[Collection(SoftHsm.Collection)]
public sealed class Pkcs11ProviderTests(SoftHsm hsm) : IClassFixture<SoftHsm>
{
    private const string RingId = "ring-hsm";
    private static readonly byte[] AssociatedData = Encoding.UTF8.GetBytes("/gatehouse/v1/certs/example");

    private readonly string _keyLabel = "mk-" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public void CreateVersion_ThenWrapAndUnwrap_RoundTrips()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        var created = provider.CreateVersion(RingId, 1);
        using var key = created.Key;
        var dataKey = RandomNumberGenerator.GetBytes(32);

        var wrapped = key.WrapKey(dataKey, AssociatedData);
        var unwrapped = new byte[32];

        Assert.Equal(_keyLabel, created.Reference);
        Assert.Equal((RingId, 1u), (key.Id, key.Version));
        Assert.Equal("pkcs11", provider.Kind);
        Assert.Equal(12 + 32 + 16, wrapped.Length);
        Assert.True(key.TryUnwrapKey(wrapped, AssociatedData, unwrapped));
        Assert.Equal(dataKey, unwrapped);
        Assert.NotEqual(wrapped, key.WrapKey(dataKey, AssociatedData)); // a fresh nonce each time
    }

    [Fact]
    public void TryUnwrapKey_OtherAssociatedData_ReturnsFalseAndZeroesOutput()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var key = provider.CreateVersion(RingId, 1).Key;
        var wrapped = key.WrapKey(RandomNumberGenerator.GetBytes(32), AssociatedData);
        var output = Enumerable.Repeat((byte)0xAA, 32).ToArray();

        Assert.False(key.TryUnwrapKey(wrapped, "/gatehouse/v1/certs/other"u8, output));
        Assert.All(output, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(0)] // nonce
    [InlineData(11)] // nonce, last byte
    [InlineData(12)] // wrapped key
    [InlineData(43)] // wrapped key, last byte
    [InlineData(44)] // tag
    [InlineData(59)] // tag, last byte
    public void TryUnwrapKey_FlippedBit_ReturnsFalse(int index)
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var key = provider.CreateVersion(RingId, 1).Key;
        var dataKey = RandomNumberGenerator.GetBytes(32);
        var wrapped = key.WrapKey(dataKey, AssociatedData);
        wrapped[index] ^= 0x01;
        var output = new byte[32];

        Assert.False(key.TryUnwrapKey(wrapped, AssociatedData, output));
        Assert.All(output, b => Assert.Equal(0, b));

        // The failure left the provider usable (SoftHSM reports a bad tag as CKR_GENERAL_ERROR; that session is closed).
        wrapped[index] ^= 0x01;
        Assert.True(key.TryUnwrapKey(wrapped, AssociatedData, output));
        Assert.Equal(dataKey, output);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(12)]
    [InlineData(59)]
    [InlineData(61)]
    public void TryUnwrapKey_WrongLength_ReturnsFalse(int length)
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var key = provider.CreateVersion(RingId, 1).Key;
        var wrapped = key.WrapKey(RandomNumberGenerator.GetBytes(32), AssociatedData);
        var resized = new byte[length];
        wrapped.AsSpan(0, Math.Min(length, wrapped.Length)).CopyTo(resized);

        Assert.False(key.TryUnwrapKey(resized, AssociatedData, new byte[32]));
    }

    [Fact]
    public void TryUnwrapKey_WrappedByVersion1_FailsUnderVersion2()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var v1 = provider.CreateVersion(RingId, 1).Key;
        var v2Created = provider.CreateVersion(RingId, 2);
        using var v2 = v2Created.Key;
        var wrapped = v1.WrapKey(RandomNumberGenerator.GetBytes(32), AssociatedData);

        Assert.Equal($"{_keyLabel}-v2", v2Created.Reference);
        Assert.False(v2.TryUnwrapKey(wrapped, AssociatedData, new byte[32]));
        Assert.True(v1.TryUnwrapKey(wrapped, AssociatedData, new byte[32]));
    }

    [Fact]
    public void WrapAndUnwrap_16ThreadsOver8Sessions_AllCorrect()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel, poolSize: 8));
        using var key = provider.CreateVersion(RingId, 1).Key;
        using var start = new Barrier(16);
        var failures = 0;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();

        var threads = Enumerable.Range(0, 16).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                var output = new byte[32];
                for (var i = 0; i < 200; i++)
                {
                    var dataKey = RandomNumberGenerator.GetBytes(32);
                    var associatedData = Encoding.UTF8.GetBytes($"/record/{t}/{i}");
                    var wrapped = key.WrapKey(dataKey, associatedData);
                    if (!key.TryUnwrapKey(wrapped, associatedData, output) || !output.AsSpan().SequenceEqual(dataKey))
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            }
            catch (Exception ex)
            {
                errors.Enqueue(ex);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.Empty(errors);
        Assert.Equal(0, failures);
    }

    [Fact]
    public void Constructor_WrongPin_SaysWrongPinWithoutThePin()
    {
        const string wrongPin = "wrong-pin-5551234";

        var error = Assert.Throws<MasterKeyException>(() => new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel, pin: wrongPin)));

        Assert.Contains("Wrong PIN", error.Message, StringComparison.Ordinal);
        Assert.Contains(hsm.TokenLabel, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(wrongPin, error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(hsm.Pin, error.ToString(), StringComparison.Ordinal);

        // The failed login left nothing behind: the right PIN works next.
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
    }

    [Fact]
    public void Constructor_UnknownTokenLabel_NamesItAndTheTokensSeen()
    {
        var error = Assert.Throws<MasterKeyException>(() => new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel, tokenLabel: "no-such-token")));

        Assert.Contains("'no-such-token'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{hsm.TokenLabel}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_MissingLibrary_NamesThePath()
    {
        var options = hsm.Options(_keyLabel) with { LibraryPath = "/nonexistent/libpkcs11.so" };

        var error = Assert.Throws<MasterKeyException>(() => new Pkcs11MasterKeyProvider(options));

        Assert.Contains("/nonexistent/libpkcs11.so", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_NotAPkcs11Library_SaysItCannotLoadIt()
    {
        var options = hsm.Options(_keyLabel) with { LibraryPath = typeof(object).Assembly.Location };

        var error = Assert.Throws<MasterKeyException>(() => new Pkcs11MasterKeyProvider(options));

        Assert.StartsWith("Cannot load the PKCS#11 library", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenVersion_MissingKeyLabel_NamesItAndHowToCreateIt()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));

        var error = Assert.Throws<MasterKeyException>(() => provider.OpenVersion(RingId, 1, provider.BootstrapReference!));

        Assert.Contains($"no AES secret key labelled '{_keyLabel}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("gatehouse keys init", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenVersion_BootstrapKeyMadeBeforehand_IsVersion1()
    {
        using (var first = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel)))
        {
            first.CreateVersion("other-ring", 1).Key.Dispose(); // stands in for the HSM's own tools
        }

        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var key = provider.OpenVersion(RingId, 1, provider.BootstrapReference!);
        var dataKey = RandomNumberGenerator.GetBytes(32);
        var output = new byte[32];

        Assert.Equal(_keyLabel, provider.BootstrapReference);
        Assert.True(key.TryUnwrapKey(key.WrapKey(dataKey, AssociatedData), AssociatedData, output));
        Assert.Equal(dataKey, output);
    }

    [Fact]
    public void CreateVersion_LabelTaken_Refuses()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        provider.CreateVersion(RingId, 1).Key.Dispose();

        var error = Assert.Throws<MasterKeyException>(() => provider.CreateVersion(RingId, 1));

        Assert.Contains($"already has an object labelled '{_keyLabel}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateVersion_KeyObject_IsSensitiveNotExtractableAndItsValueCannotBeRead()
    {
        using (var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel)))
        {
            provider.CreateVersion(RingId, 1).Key.Dispose();
        }

        AsTokenUser((session, attribute) =>
        {
            var handle = Assert.Single(session.FindAllObjects([attribute.Create(CKA.CKA_LABEL, _keyLabel)]));
            var attributes = session.GetAttributeValue(handle, [CKA.CKA_CLASS, CKA.CKA_KEY_TYPE, CKA.CKA_VALUE_LEN, CKA.CKA_TOKEN, CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_VALUE]);

            Assert.Equal((ulong)CKO.CKO_SECRET_KEY, attributes[0].GetValueAsUlong());
            Assert.Equal((ulong)CKK.CKK_AES, attributes[1].GetValueAsUlong());
            Assert.Equal(32ul, attributes[2].GetValueAsUlong());
            Assert.True(attributes[3].GetValueAsBool(), "CKA_TOKEN");
            Assert.True(attributes[4].GetValueAsBool(), "CKA_PRIVATE");
            Assert.True(attributes[5].GetValueAsBool(), "CKA_SENSITIVE");
            Assert.False(attributes[6].GetValueAsBool(), "CKA_EXTRACTABLE");
            Assert.True(attributes[7].GetValueAsBool() && attributes[8].GetValueAsBool(), "CKA_ENCRYPT and CKA_DECRYPT");
            Assert.True(attributes[9].CannotBeRead, "CKA_VALUE must not be readable");
        });
    }

    [Fact]
    public void OpenVersion_TwoObjectsWithTheLabel_Refuses()
    {
        using (var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel)))
        {
            provider.CreateVersion(RingId, 1).Key.Dispose();
        }

        AsTokenUser((session, attribute) => session.CreateObject(
        [
            attribute.Create(CKA.CKA_CLASS, CKO.CKO_DATA),
            attribute.Create(CKA.CKA_TOKEN, true),
            attribute.Create(CKA.CKA_LABEL, _keyLabel),
            attribute.Create(CKA.CKA_VALUE, "same label"u8.ToArray()),
        ]));

        using var reopened = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        var error = Assert.Throws<MasterKeyException>(() => reopened.OpenVersion(RingId, 1, _keyLabel));

        Assert.Contains($"2 objects labelled '{_keyLabel}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenVersion_ExtractableKey_Refuses()
    {
        AsTokenUser((session, attribute) => session.GenerateKey(session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN),
        [
            attribute.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            attribute.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            attribute.Create(CKA.CKA_VALUE_LEN, 32ul),
            attribute.Create(CKA.CKA_TOKEN, true),
            attribute.Create(CKA.CKA_SENSITIVE, false),
            attribute.Create(CKA.CKA_EXTRACTABLE, true),
            attribute.Create(CKA.CKA_ENCRYPT, true),
            attribute.Create(CKA.CKA_DECRYPT, true),
            attribute.Create(CKA.CKA_LABEL, _keyLabel),
        ]));

        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        var error = Assert.Throws<MasterKeyException>(() => provider.OpenVersion(RingId, 1, _keyLabel));

        Assert.Contains("refused as a master key", error.Message, StringComparison.Ordinal);
        Assert.Contains("CKA_SENSITIVE", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DestroyVersion_RemovesTheKey_ThenOpenVersionNamesIt()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        provider.CreateVersion(RingId, 1).Key.Dispose();
        var created = provider.CreateVersion(RingId, 2);
        using var key = created.Key;

        provider.DestroyVersion(RingId, 2, created.Reference);
        provider.DestroyVersion(RingId, 2, created.Reference); // already gone: no error

        var error = Assert.Throws<MasterKeyException>(() => provider.OpenVersion(RingId, 2, created.Reference));
        Assert.Contains($"'{_keyLabel}-v2'", error.Message, StringComparison.Ordinal);
        var stale = Assert.Throws<MasterKeyException>(() => key.WrapKey(new byte[32], AssociatedData));
        Assert.Contains("no longer exists", stale.Message, StringComparison.Ordinal);
        using var v1 = provider.OpenVersion(RingId, 1, _keyLabel); // the other version is untouched
    }

    [Fact]
    public void SecondProvider_WhileTheFirstIsOpen_SharesTheLoginAndOutlivesIt()
    {
        var first = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        var created = first.CreateVersion(RingId, 1);
        var dataKey = RandomNumberGenerator.GetBytes(32);
        var wrapped = created.Key.WrapKey(dataKey, AssociatedData);

        using var second = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var opened = second.OpenVersion(RingId, 1, created.Reference);
        created.Key.Dispose();
        first.Dispose();
        first.Dispose(); // idempotent
        var output = new byte[32];

        // The first one's disposal neither logged out nor finalised the module under the second.
        Assert.True(opened.TryUnwrapKey(wrapped, AssociatedData, output));
        Assert.Equal(dataKey, output);
        Assert.Throws<ObjectDisposedException>(() => first.CreateVersion(RingId, 2));
    }

    [Fact]
    public void NewProvider_AfterTheFirstIsDisposed_InitialisesAgainAndOpensItsVersion()
    {
        byte[] wrapped;
        var dataKey = RandomNumberGenerator.GetBytes(32);
        string reference;
        using (var first = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel)))
        {
            var created = first.CreateVersion(RingId, 1);
            reference = created.Reference;
            using var key = created.Key;
            wrapped = key.WrapKey(dataKey, AssociatedData);
        }

        using var second = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var opened = second.OpenVersion(RingId, 1, reference);
        var output = new byte[32];

        Assert.True(opened.TryUnwrapKey(wrapped, AssociatedData, output));
        Assert.Equal(dataKey, output);
    }

    [Fact]
    public void SecondProvider_SameTokenOtherPin_IsRefused()
    {
        using var first = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));

        var error = Assert.Throws<MasterKeyException>(() => new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel, pin: "another-pin-777")));

        Assert.Contains("different PIN", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("another-pin-777", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void EnvelopeCipher_OverAPkcs11Key_SealsAndOpens()
    {
        using var provider = new Pkcs11MasterKeyProvider(hsm.Options(_keyLabel));
        using var ring = new MasterKeyRing([], provider.CreateVersion(RingId, 1).Key);
        var cipher = new EnvelopeCipher(ring);
        var secret = Encoding.UTF8.GetBytes("-----BEGIN " + "PRIVATE KEY----- not really"); // split so no scanner mistakes the test for a key

        var sealedSecret = cipher.Seal("/gatehouse/v1/certs/a", secret);
        using var opened = cipher.Open("/gatehouse/v1/certs/a", sealedSecret);

        Assert.Equal(secret, opened.Span.ToArray());
        Assert.Throws<EnvelopeAuthenticationException>(() => cipher.Open("/gatehouse/v1/certs/b", sealedSecret));
    }

    [Fact]
    public void Options_ToString_HidesThePin()
    {
        var text = hsm.Options(_keyLabel).ToString();

        Assert.DoesNotContain(hsm.Pin, text, StringComparison.Ordinal);
        Assert.Contains(_keyLabel, text, StringComparison.Ordinal);
    }

    /// <summary>Works on the token through Pkcs11Interop alone, as an HSM administrator's tool would. Only while no
    /// provider is open: disposing this library finalises the module for the whole process.</summary>
    private void AsTokenUser(Action<ISession, Net.Pkcs11Interop.HighLevelAPI.Factories.IObjectAttributeFactory> action)
    {
        Pkcs11MasterKeyProvider.EnsureNativeLoader();
        var factories = new Pkcs11InteropFactories();
        using var library = factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, hsm.LibraryPath, AppType.MultiThreaded);
        var slot = library.GetSlotList(SlotsType.WithTokenPresent).Single(s => s.GetTokenInfo().Label == hsm.TokenLabel);
        using var session = slot.OpenSession(SessionType.ReadWrite);
        session.Login(CKU.CKU_USER, hsm.Pin);
        try
        {
            action(session, factories.ObjectAttributeFactory);
        }
        finally
        {
            session.Logout();
        }
    }
}
