using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using HighLevelAPI80 = Net.Pkcs11Interop.HighLevelAPI80;
using LowLevelAPI80 = Net.Pkcs11Interop.LowLevelAPI80;

namespace Gatehouse.Keys.Pkcs11;

/// <summary>
/// Master keys held in a PKCS#11 token as AES-256 secret keys that are sensitive and never extractable. Data keys are
/// wrapped and unwrapped inside the token with CKM_AES_GCM; the bytes are those of <see cref="SoftwareMasterKey"/>:
/// nonce 12 | wrapped key | tag 16. The reference the key ring records for a version is the key's CKA_LABEL.
/// </summary>
/// <remarks>
/// <para>A module is initialised once per process and a user login belongs to the application, not to a session, so
/// providers over the same module share one load and providers over the same token share one login (counted; the last
/// one to leave logs out and finalises). A reloaded configuration can thus open a new provider before it disposes the
/// old one.</para>
/// <para>Sessions are not safe for concurrent operations: every operation rents one from a pool of at most
/// <see cref="Pkcs11Options.PoolSize"/> sessions, opened on demand. A session whose operation failed for any reason
/// other than a ciphertext that does not authenticate is closed, not reused.</para>
/// </remarks>
public sealed class Pkcs11MasterKeyProvider : IMasterKeyProvider
{
    private const int KeySize = 32;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly Pkcs11Options _options;
    private readonly ILogger _logger;
    private readonly TokenLogin _login;
    private readonly SessionPool _sessions;

    // Serialises this process's create and destroy, so that its own check for an existing label cannot race itself.
    private readonly Lock _objectGate = new();
    private int _disposed;

    /// <summary>Loads the module, finds the token labelled <see cref="Pkcs11Options.TokenLabel"/> and logs in.</summary>
    /// <exception cref="MasterKeyException">The module cannot be loaded, the token is missing or ambiguous, or the
    /// PIN is wrong or locked; the message says which.</exception>
    public Pkcs11MasterKeyProvider(Pkcs11Options options, ILogger<Pkcs11MasterKeyProvider>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Name);
        ArgumentException.ThrowIfNullOrEmpty(options.LibraryPath);
        ArgumentException.ThrowIfNullOrEmpty(options.TokenLabel);
        ArgumentException.ThrowIfNullOrEmpty(options.KeyLabel);
        ArgumentNullException.ThrowIfNull(options.Pin);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PoolSize, 1);
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _login = TokenLogin.Acquire(options);
        _sessions = new SessionPool(_login.Slot, options.PoolSize);
        Pkcs11Log.Opened(_logger, options.Name, options.TokenLabel, options.LibraryPath);
    }

    public string Name => _options.Name;

    public string Kind => "pkcs11";

    /// <summary>The configured key label: a key made beforehand with the HSM's tools becomes version 1.</summary>
    public string? BootstrapReference => _options.KeyLabel;

    public MasterKeyVersion CreateVersion(string ringId, uint version)
    {
        _ = Envelope.EncodeHeader(ringId, version); // validates the id
        ThrowIfDisposed();
        var label = LabelOf(version);
        IObjectHandle handle;
        lock (_objectGate)
        {
            using var session = OpenReadWriteSession($"create master key '{label}'");
            try
            {
                if (FindSecretKeysOrAll(session, label, secretKeysOnly: false).Count > 0)
                {
                    throw new MasterKeyException(
                        $"Token '{_options.TokenLabel}' already has an object labelled '{label}'; version {version} of master key '{ringId}' is not created over it.");
                }

                handle = GenerateKey(session, label);

                // Another process (another instance on a network HSM) may have checked at the same moment.
                if (FindSecretKeysOrAll(session, label, secretKeysOnly: false).Count > 1)
                {
                    session.DestroyObject(handle);
                    throw new MasterKeyException(
                        $"Another process created an object labelled '{label}' on token '{_options.TokenLabel}' at the same time; version {version} of master key '{ringId}' was not created.");
                }
            }
            catch (Pkcs11Exception ex)
            {
                throw Failure(ex, $"create master key '{label}'", label);
            }
        }

        Pkcs11Log.Created(_logger, ringId, version, label, _options.TokenLabel);
        return new MasterKeyVersion(new Pkcs11MasterKey(this, ringId, version, label, handle), label);
    }

    public IMasterKey OpenVersion(string ringId, uint version, string reference)
    {
        _ = Envelope.EncodeHeader(ringId, version);
        ArgumentException.ThrowIfNullOrEmpty(reference);
        var handle = Run($"open master key '{reference}'", reference, (this, reference), static (session, state) => state.Item1.FindMasterKey(session, state.reference));
        return new Pkcs11MasterKey(this, ringId, version, reference, handle);
    }

    public void DestroyVersion(string ringId, uint version, string reference)
    {
        ArgumentException.ThrowIfNullOrEmpty(reference);
        ThrowIfDisposed();
        lock (_objectGate)
        {
            using var session = OpenReadWriteSession($"destroy master key '{reference}'");
            try
            {
                var keys = FindSecretKeysOrAll(session, reference, secretKeysOnly: true);
                if (keys.Count > 1)
                {
                    throw new MasterKeyException(
                        $"Token '{_options.TokenLabel}' has {keys.Count} secret keys labelled '{reference}'; none is destroyed, as the label does not say which one is version {version} of master key '{ringId}'.");
                }

                if (keys.Count == 0)
                {
                    return;
                }

                session.DestroyObject(keys[0]);
            }
            catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_OBJECT_HANDLE_INVALID)
            {
                return; // destroyed by someone else between the search and now
            }
            catch (Pkcs11Exception ex)
            {
                throw Failure(ex, $"destroy master key '{reference}'", reference);
            }
        }

        Pkcs11Log.Destroyed(_logger, ringId, version, reference, _options.TokenLabel);
    }

    /// <summary>Closes the sessions, logs out when no other provider uses the token, finalises when none uses the
    /// module. Operations still running finish first.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _sessions.Dispose();
        _login.Release();
    }

    /// <summary>Makes Pkcs11Interop loadable on this system (see ResolveDlopen); for code that uses Pkcs11Interop
    /// without a provider, such as tests and tools.</summary>
    internal static void EnsureNativeLoader()
    {
        lock (TokenLogin.Gate)
        {
            TokenLogin.InstallDlopenResolver();
        }
    }

    private string LabelOf(uint version) => version == 1 ? _options.KeyLabel : $"{_options.KeyLabel}-v{version}";

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed != 0, this);

    private ISession OpenReadWriteSession(string action)
    {
        try
        {
            return _login.Slot.OpenSession(SessionType.ReadWrite);
        }
        catch (Pkcs11Exception ex)
        {
            throw Failure(ex, action, label: null);
        }
    }

    private static IObjectHandle GenerateKey(ISession session, string label)
    {
        var factory = session.Factories.ObjectAttributeFactory;
        List<IObjectAttribute> template =
        [
            factory.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            factory.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            factory.Create(CKA.CKA_VALUE_LEN, (ulong)KeySize),
            factory.Create(CKA.CKA_TOKEN, true),
            factory.Create(CKA.CKA_PRIVATE, true),
            factory.Create(CKA.CKA_SENSITIVE, true),
            factory.Create(CKA.CKA_EXTRACTABLE, false),
            factory.Create(CKA.CKA_ENCRYPT, true),
            factory.Create(CKA.CKA_DECRYPT, true),
            factory.Create(CKA.CKA_WRAP, false),
            factory.Create(CKA.CKA_UNWRAP, false),
            factory.Create(CKA.CKA_LABEL, label),
            factory.Create(CKA.CKA_ID, Encoding.UTF8.GetBytes(label)),
        ];
        try
        {
            using var mechanism = session.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN);
            return session.GenerateKey(mechanism, template);
        }
        finally
        {
            DisposeAll(template);
        }
    }

    private static List<IObjectHandle> FindSecretKeysOrAll(ISession session, string label, bool secretKeysOnly)
    {
        var factory = session.Factories.ObjectAttributeFactory;
        List<IObjectAttribute> template = [factory.Create(CKA.CKA_LABEL, label)];
        if (secretKeysOnly)
        {
            template.Add(factory.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY));
        }

        try
        {
            return session.FindAllObjects(template);
        }
        finally
        {
            DisposeAll(template);
        }
    }

    /// <summary>The one object labelled <paramref name="label"/>, verified to be a usable, non-extractable AES-256
    /// key: a key that could leave the token is refused rather than used.</summary>
    private IObjectHandle FindMasterKey(ISession session, string label)
    {
        var found = FindSecretKeysOrAll(session, label, secretKeysOnly: false);
        if (found.Count == 0)
        {
            throw new MasterKeyException(
                $"Token '{_options.TokenLabel}' has no AES secret key labelled '{label}'; create it with `gatehouse keys init` or your HSM's tools (CKK_AES, 32 bytes, CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_ENCRYPT, CKA_DECRYPT).");
        }

        if (found.Count > 1)
        {
            throw new MasterKeyException(
                $"Token '{_options.TokenLabel}' has {found.Count} objects labelled '{label}'; a master key's label must name exactly one object. Remove or relabel the others with your HSM's tools.");
        }

        var attributes = session.GetAttributeValue(found[0], [CKA.CKA_CLASS, CKA.CKA_KEY_TYPE, CKA.CKA_VALUE_LEN, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT]);
        try
        {
            var problem = MasterKeyProblem(attributes);
            if (problem is not null)
            {
                throw new MasterKeyException($"The object labelled '{label}' on token '{_options.TokenLabel}' is refused as a master key: {problem}.");
            }
        }
        finally
        {
            DisposeAll(attributes);
        }

        return found[0];
    }

    private static string? MasterKeyProblem(List<IObjectAttribute> attributes)
    {
        // The order is the one asked for in FindMasterKey.
        var (objectClass, keyType, length, sensitive, extractable, encrypt, decrypt) =
            (attributes[0], attributes[1], attributes[2], attributes[3], attributes[4], attributes[5], attributes[6]);
        if (objectClass.CannotBeRead || objectClass.GetValueAsUlong() != (ulong)CKO.CKO_SECRET_KEY
            || keyType.CannotBeRead || keyType.GetValueAsUlong() != (ulong)CKK.CKK_AES)
        {
            return "it is not an AES secret key";
        }

        if (!length.CannotBeRead && length.GetValueAsUlong() != KeySize)
        {
            return $"it is an AES key of {length.GetValueAsUlong()} bytes, not {KeySize}";
        }

        if (sensitive.CannotBeRead || !sensitive.GetValueAsBool())
        {
            return "it is not CKA_SENSITIVE, so its value could be read out of the token";
        }

        if (extractable.CannotBeRead || extractable.GetValueAsBool())
        {
            return "it is CKA_EXTRACTABLE, so it could be wrapped out of the token";
        }

        if (encrypt.CannotBeRead || !encrypt.GetValueAsBool() || decrypt.CannotBeRead || !decrypt.GetValueAsBool())
        {
            return "it does not allow both CKA_ENCRYPT and CKA_DECRYPT";
        }

        return null;
    }

    private byte[] Encrypt(string label, IObjectHandle key, byte[] nonce, byte[] associatedData, byte[] plaintext) =>
        Run($"wrap a data key with master key '{label}'", label, (key, nonce, associatedData, plaintext), static (session, s) =>
        {
            using var parameters = session.Factories.MechanismParamsFactory.CreateCkGcmParams(s.nonce, NonceSize * 8, s.associatedData, TagSize * 8);
            using var mechanism = session.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
            return session.Encrypt(mechanism, s.key, s.plaintext);
        });

    /// <summary>Decrypts in the token into <paramref name="plaintext"/> (as long as <paramref name="sealedKey"/>) and
    /// returns the plaintext's length. A ciphertext that does not authenticate surfaces as the Pkcs11Exception for
    /// which <see cref="IsAuthenticationFailure"/> is true, every other failure as a MasterKeyException.</summary>
    /// <remarks>Pkcs11Interop's Session.Decrypt sizes its buffer from C_Decrypt's length query, which for AES-GCM is
    /// the input's length (SoftHSM answers 48 for a 32-byte key), then copies the plaintext into a shorter array and
    /// leaves the first one, plaintext inside, to the GC. The low-level call decrypts into our buffer instead.</remarks>
    private int Decrypt(string label, IObjectHandle key, byte[] nonce, byte[] associatedData, byte[] sealedKey, byte[] plaintext) =>
        Run($"unwrap a data key with master key '{label}'", label, (key, nonce, associatedData, sealedKey, plaintext, direct: _login.DirectDecrypt), static (session, s) =>
        {
            using var parameters = session.Factories.MechanismParamsFactory.CreateCkGcmParams(s.nonce, NonceSize * 8, s.associatedData, TagSize * 8);
            using var mechanism = session.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
            if (s.direct is not null && mechanism.ToMarshalableStructure() is LowLevelAPI80.CK_MECHANISM native)
            {
                var rv = s.direct.C_DecryptInit(session.SessionId, ref native, s.key.ObjectId);
                if (rv != CKR.CKR_OK)
                {
                    throw new Pkcs11Exception("C_DecryptInit", rv);
                }

                var length = (ulong)s.plaintext.Length;
                rv = s.direct.C_Decrypt(session.SessionId, s.sealedKey, (ulong)s.sealedKey.Length, s.plaintext, ref length);
                return rv == CKR.CKR_OK ? (int)length : throw new Pkcs11Exception("C_Decrypt", rv);
            }

            var decrypted = session.Decrypt(mechanism, s.key, s.sealedKey);
            try
            {
                decrypted.CopyTo(s.plaintext, 0);
                return decrypted.Length;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(decrypted);
            }
        });

    private TResult Run<TState, TResult>(string action, string label, TState state, Func<ISession, TState, TResult> operation)
    {
        ThrowIfDisposed();
        ISession session;
        try
        {
            session = _sessions.Rent();
        }
        catch (Pkcs11Exception ex)
        {
            throw Failure(ex, action, label);
        }

        var reusable = false;
        try
        {
            var result = operation(session, state);
            reusable = true;
            return result;
        }
        catch (MasterKeyException)
        {
            reusable = true; // the token answered; the object was not what we need
            throw;
        }
        catch (Pkcs11Exception ex) when (IsAuthenticationFailure(ex))
        {
            // The standard codes end the operation; SoftHSM answers a failed tag with CKR_GENERAL_ERROR, which on
            // another token could mean a broken session, so that one is not reused.
            reusable = ex.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE;
            throw;
        }
        catch (Pkcs11Exception ex)
        {
            Pkcs11Log.SessionClosed(_logger, _options.TokenLabel, ex.Method, ex.RV.ToString());
            throw Failure(ex, action, label);
        }
        finally
        {
            _sessions.Return(session, reusable);
        }
    }

    private static bool IsAuthenticationFailure(Pkcs11Exception ex) =>
        ex.Method == "C_Decrypt"
        && ex.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_GENERAL_ERROR or CKR.CKR_FUNCTION_FAILED;

    private MasterKeyException Failure(Pkcs11Exception ex, string action, string? label)
    {
        var token = _options.TokenLabel;
        return ex.RV switch
        {
            CKR.CKR_OBJECT_HANDLE_INVALID or CKR.CKR_KEY_HANDLE_INVALID =>
                new($"Cannot {action}: the key object labelled '{label}' no longer exists on token '{token}'.", ex),
            CKR.CKR_USER_NOT_LOGGED_IN =>
                new($"Cannot {action}: token '{token}' is no longer logged in (was it removed or reset?).", ex),
            CKR.CKR_DEVICE_REMOVED or CKR.CKR_TOKEN_NOT_PRESENT or CKR.CKR_DEVICE_ERROR =>
                new($"Cannot {action}: token '{token}' is not reachable ({ex.RV}).", ex),
            CKR.CKR_MECHANISM_INVALID or CKR.CKR_MECHANISM_PARAM_INVALID =>
                new($"Cannot {action}: token '{token}' does not support AES-GCM with a 12-byte nonce and a 16-byte tag ({ex.RV}).", ex),
            CKR.CKR_SESSION_COUNT =>
                new($"Cannot {action}: token '{token}' has no free session; lower the provider's pool size or raise the token's session limit.", ex),
            CKR.CKR_TOKEN_WRITE_PROTECTED =>
                new($"Cannot {action}: token '{token}' is write-protected.", ex),
            _ => new($"Cannot {action} on token '{token}': {ex.Method} returned {ex.RV}.", ex),
        };
    }

    private static void DisposeAll(List<IObjectAttribute> attributes)
    {
        foreach (var attribute in attributes)
        {
            attribute.Dispose();
        }
    }

    /// <summary>One master key version: a handle to the key object, valid in every session of this login.</summary>
    private sealed class Pkcs11MasterKey(Pkcs11MasterKeyProvider provider, string id, uint version, string label, IObjectHandle handle) : IMasterKey
    {
        private int _disposed;

        public string Id { get; } = id;

        public uint Version { get; } = version;

        public byte[] WrapKey(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> associatedData)
        {
            ThrowIfDisposed();
            var nonce = RandomNumberGenerator.GetBytes(NonceSize);

            // Pinned so that the GC cannot leave a copy of the data key behind when it compacts.
            var plaintext = GC.AllocateArray<byte>(dataKey.Length, pinned: true);
            try
            {
                dataKey.CopyTo(plaintext);
                var sealedKey = provider.Encrypt(label, handle, nonce, associatedData.ToArray(), plaintext);
                if (sealedKey.Length != dataKey.Length + TagSize)
                {
                    throw new MasterKeyException(
                        $"Master key '{label}' on token '{provider._options.TokenLabel}' returned {sealedKey.Length} bytes of AES-GCM output for {dataKey.Length} bytes of data key.");
                }

                var wrapped = new byte[NonceSize + sealedKey.Length];
                nonce.CopyTo(wrapped, 0);
                sealedKey.CopyTo(wrapped, NonceSize);
                return wrapped;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }

        public bool TryUnwrapKey(ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> associatedData, Span<byte> dataKey)
        {
            ThrowIfDisposed();
            if (wrappedKey.Length != NonceSize + dataKey.Length + TagSize)
            {
                CryptographicOperations.ZeroMemory(dataKey);
                return false;
            }

            var sealedKey = wrappedKey[NonceSize..].ToArray();
            var plaintext = GC.AllocateArray<byte>(sealedKey.Length, pinned: true);
            try
            {
                var length = provider.Decrypt(label, handle, wrappedKey[..NonceSize].ToArray(), associatedData.ToArray(), sealedKey, plaintext);
                if (length != dataKey.Length)
                {
                    CryptographicOperations.ZeroMemory(dataKey);
                    return false;
                }

                plaintext.AsSpan(0, length).CopyTo(dataKey);
                return true;
            }
            catch (Pkcs11Exception ex) when (IsAuthenticationFailure(ex))
            {
                CryptographicOperations.ZeroMemory(dataKey);
                return false;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }

        /// <summary>The key object stays in the token; <see cref="DestroyVersion"/> removes it.</summary>
        public void Dispose() => Interlocked.Exchange(ref _disposed, 1);

        private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed != 0, this);
    }

    /// <summary>Read-only sessions of the login, at most <c>size</c> in use at once, opened when none is idle.</summary>
    private sealed class SessionPool(ISlot slot, int size) : IDisposable
    {
        private readonly ConcurrentBag<ISession> _idle = [];
        private readonly SemaphoreSlim _slots = new(size, size);
        private volatile bool _closed;

        public ISession Rent()
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _slots.Wait();
            if (_closed)
            {
                _slots.Release();
                throw new ObjectDisposedException(nameof(Pkcs11MasterKeyProvider));
            }

            if (_idle.TryTake(out var session))
            {
                return session;
            }

            try
            {
                return slot.OpenSession(SessionType.ReadOnly);
            }
            catch
            {
                _slots.Release();
                throw;
            }
        }

        public void Return(ISession session, bool reusable)
        {
            if (reusable && !_closed)
            {
                _idle.Add(session);
            }
            else
            {
                Close(session);
            }

            _slots.Release();
        }

        /// <summary>Waits for the sessions in use to come back, then closes them all. Renters blocked meanwhile get
        /// an ObjectDisposedException.</summary>
        public void Dispose()
        {
            _closed = true;
            for (var i = 0; i < size; i++)
            {
                _slots.Wait();
            }

            while (_idle.TryTake(out var session))
            {
                Close(session);
            }

            _slots.Release(size);
        }

        private static void Close(ISession session)
        {
            try
            {
                session.Dispose();
            }
            catch (Pkcs11Exception)
            {
                // Already gone with the token or the module; nothing left to release.
            }
        }
    }

    /// <summary>A user login to one token of one loaded module, shared by every provider of this process that uses
    /// that token.</summary>
    private sealed class TokenLogin
    {
        public static readonly Lock Gate = new();
        private static readonly Dictionary<string, LoadedModule> Modules = new(StringComparer.Ordinal);

        // Two providers of one token must agree on the PIN, and only a keyed hash of it is kept to compare them.
        private static readonly byte[] PinHashKey = RandomNumberGenerator.GetBytes(32);
        private static bool s_resolverInstalled;

        private readonly LoadedModule _module;
        private readonly ISession _anchor;
        private readonly bool _loggedInHere;
        private readonly byte[] _pinHash;
        private int _users = 1;

        private TokenLogin(LoadedModule module, ISlot slot, (ISession Anchor, bool LoggedInHere) login, byte[] pinHash)
        {
            _module = module;
            Slot = slot;
            (_anchor, _loggedInHere) = login;
            _pinHash = pinHash;
        }

        public ISlot Slot { get; }

        public LowLevelAPI80.Pkcs11Library? DirectDecrypt => _module.DirectDecrypt;

        public static TokenLogin Acquire(Pkcs11Options options)
        {
            lock (Gate)
            {
                InstallDlopenResolver();
                var module = LoadedModule.Open(options.LibraryPath);
                var pin = Encoding.UTF8.GetBytes(options.Pin);
                try
                {
                    var slot = FindSlot(module.Library, options);
                    var pinHash = HMACSHA256.HashData(PinHashKey, pin);
                    if (module.Logins.TryGetValue(slot.SlotId, out var shared))
                    {
                        if (!CryptographicOperations.FixedTimeEquals(shared._pinHash, pinHash))
                        {
                            throw new MasterKeyException(
                                $"Token '{options.TokenLabel}' is already logged in by another provider of this process with a different PIN; providers of one token must use the same PIN.");
                        }

                        shared._users++;
                        module.Release(); // the shared login holds the module already
                        return shared;
                    }

                    var login = new TokenLogin(module, slot, LogIn(slot, options.TokenLabel, pin), pinHash);
                    module.Logins.Add(slot.SlotId, login);
                    return login;
                }
                catch
                {
                    module.Release();
                    throw;
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(pin);
                }
            }
        }

        public void Release()
        {
            lock (Gate)
            {
                if (--_users > 0)
                {
                    return;
                }

                try
                {
                    if (_loggedInHere)
                    {
                        _anchor.Logout();
                    }
                }
                catch (Pkcs11Exception)
                {
                    // Not logged in any more (token removed or reset): nothing to end.
                }

                try
                {
                    _anchor.Dispose();
                }
                catch (Pkcs11Exception)
                {
                }

                _module.Logins.Remove(Slot.SlotId);
                _module.Release();
            }
        }

        /// <summary>Opens the session that holds the login for as long as the token is used: PKCS#11 logs an
        /// application out when its last session with the token closes, and the pool may close all of its own.</summary>
        private static (ISession Anchor, bool LoggedInHere) LogIn(ISlot slot, string token, byte[] pin)
        {
            ISession anchor;
            try
            {
                anchor = slot.OpenSession(SessionType.ReadOnly);
            }
            catch (Pkcs11Exception ex)
            {
                throw new MasterKeyException($"Cannot open a session with token '{token}': C_OpenSession returned {ex.RV}.", ex);
            }

            try
            {
                anchor.Login(CKU.CKU_USER, pin);
                return (anchor, true);
            }
            catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_USER_ALREADY_LOGGED_IN)
            {
                // Logged in by another user of the module in this process, outside Gatehouse: the PIN is not
                // checked, and that login is not ours to end.
                return (anchor, false);
            }
            catch (Pkcs11Exception ex)
            {
                anchor.Dispose();
                throw ex.RV switch
                {
                    CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_LEN_RANGE => new MasterKeyException($"Wrong PIN for token '{token}' ({ex.RV}).", ex),
                    CKR.CKR_PIN_LOCKED => new MasterKeyException($"The user PIN of token '{token}' is locked after too many wrong attempts; unlock it with the SO PIN using your HSM's tools.", ex),
                    CKR.CKR_PIN_EXPIRED => new MasterKeyException($"The user PIN of token '{token}' has expired; set a new one with your HSM's tools.", ex),
                    CKR.CKR_USER_PIN_NOT_INITIALIZED => new MasterKeyException($"Token '{token}' has no user PIN yet; set one with your HSM's tools.", ex),
                    CKR.CKR_USER_ANOTHER_ALREADY_LOGGED_IN => new MasterKeyException($"Token '{token}' is logged in as its security officer by this process; log that session out first.", ex),
                    _ => new MasterKeyException($"Cannot log in to token '{token}': C_Login returned {ex.RV}.", ex),
                };
            }
        }

        private static ISlot FindSlot(IPkcs11Library library, Pkcs11Options options)
        {
            List<ISlot> slots;
            try
            {
                slots = library.GetSlotList(SlotsType.WithTokenPresent);
            }
            catch (Pkcs11Exception ex)
            {
                throw new MasterKeyException($"The PKCS#11 library '{options.LibraryPath}' cannot list its tokens: {ex.Method} returned {ex.RV}.", ex);
            }

            var seen = new List<string>();
            var matches = new List<ISlot>();
            foreach (var slot in slots)
            {
                ITokenInfo info;
                try
                {
                    info = slot.GetTokenInfo();
                }
                catch (Pkcs11Exception)
                {
                    continue; // a slot whose token went away while we looked
                }

                if (!info.TokenFlags.TokenInitialized)
                {
                    continue;
                }

                seen.Add($"'{info.Label}'");
                if (string.Equals(info.Label, options.TokenLabel, StringComparison.Ordinal))
                {
                    matches.Add(slot);
                }
            }

            return matches.Count switch
            {
                1 => matches[0],
                0 => throw new MasterKeyException(
                    $"No token labelled '{options.TokenLabel}' in the PKCS#11 library '{options.LibraryPath}'; tokens seen: {(seen.Count == 0 ? "none" : string.Join(", ", seen))}. (Some libraries, SoftHSM among them, list only the tokens that existed when the process loaded them.)"),
                _ => throw new MasterKeyException(
                    $"{matches.Count} tokens are labelled '{options.TokenLabel}' in the PKCS#11 library '{options.LibraryPath}'; the label must name one token."),
            };
        }

        /// <summary>Called under <see cref="Gate"/>.</summary>
        public static void InstallDlopenResolver()
        {
            if (s_resolverInstalled)
            {
                return;
            }

            s_resolverInstalled = true;
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, ResolveDlopen);
            }
            catch (InvalidOperationException)
            {
                // The host installed its own resolver for Pkcs11Interop; it knows its platform.
            }
        }

        /// <summary>Pkcs11Interop imports dlopen from "libdl". Since glibc 2.34 dlopen lives in libc, and the
        /// unversioned libdl.so exists only where libc6-dev is installed, so the import fails on a plain system.</summary>
        private static IntPtr ResolveDlopen(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
        {
            if (!string.Equals(libraryName, "libdl", StringComparison.Ordinal))
            {
                return IntPtr.Zero;
            }

            foreach (var candidate in (ReadOnlySpan<string>)["libc.so.6", "libdl.so.2"])
            {
                if (NativeLibrary.TryLoad(candidate, out var handle))
                {
                    if (NativeLibrary.TryGetExport(handle, "dlopen", out _))
                    {
                        return handle;
                    }

                    NativeLibrary.Free(handle);
                }
            }

            return IntPtr.Zero; // the runtime's own search: libdl.dylib on macOS, libdl.so with libc6-dev
        }

        /// <summary>A module loaded and initialised once for the process, finalised when its last login ends.</summary>
        private sealed class LoadedModule(string key, IPkcs11Library library, LowLevelAPI80.Pkcs11Library? directDecrypt)
        {
            private static readonly Pkcs11InteropFactories Factories = new();
            private int _users = 1;

            public IPkcs11Library Library { get; } = library;

            /// <summary>The same module's functions without Pkcs11Interop's buffers, where the high-level API is the
            /// 64-bit one (Linux, macOS); it shares the module's initialisation and never finalises it.</summary>
            public LowLevelAPI80.Pkcs11Library? DirectDecrypt { get; } = directDecrypt;

            public Dictionary<ulong, TokenLogin> Logins { get; } = [];

            public static LoadedModule Open(string path)
            {
                var key = Canonical(path);
                if (Modules.TryGetValue(key, out var loaded))
                {
                    loaded._users++;
                    return loaded;
                }

                if (path.Contains('/', StringComparison.Ordinal) && !File.Exists(path))
                {
                    throw new MasterKeyException($"The PKCS#11 library '{path}' does not exist.");
                }

                IPkcs11Library? library = null;
                try
                {
                    library = Factories.Pkcs11LibraryFactory.LoadPkcs11Library(Factories, path, AppType.MultiThreaded);
                    var direct = library is HighLevelAPI80.Pkcs11Library ? new LowLevelAPI80.Pkcs11Library(path, useGetFunctionList: true) : null;
                    loaded = new LoadedModule(key, library, direct);
                }
                catch (Pkcs11Exception ex)
                {
                    throw new MasterKeyException($"The PKCS#11 library '{path}' failed to initialise: {ex.Method} returned {ex.RV}.", ex);
                }
                catch (Exception ex) when (ex is UnmanagedException or LibraryArchitectureException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
                {
                    library?.Dispose();
                    throw new MasterKeyException($"Cannot load the PKCS#11 library '{path}': {ex.Message}", ex);
                }

                Modules.Add(key, loaded);
                return loaded;
            }

            public void Release()
            {
                if (--_users > 0)
                {
                    return;
                }

                Modules.Remove(key);
                DirectDecrypt?.Dispose(); // unload only
                Library.Dispose(); // C_Finalize, then unload
            }

            /// <summary>One entry per file, however it is named: a second C_Initialize of a loaded module is a no-op
            /// for the module, and finalising through one name would end the other's sessions.</summary>
            private static string Canonical(string path)
            {
                if (!path.Contains('/', StringComparison.Ordinal))
                {
                    return path; // found by the loader's search path
                }

                try
                {
                    var full = Path.GetFullPath(path);
                    return File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
                }
                catch (IOException)
                {
                    return path;
                }
            }
        }
    }
}

internal static partial class Pkcs11Log
{
    [LoggerMessage(EventId = 7101, Level = LogLevel.Information, Message = "Master key provider {Provider} uses PKCS#11 token {TokenLabel} through {LibraryPath}")]
    public static partial void Opened(ILogger logger, string provider, string tokenLabel, string libraryPath);

    [LoggerMessage(EventId = 7102, Level = LogLevel.Information, Message = "Created version {Version} of master key {RingId} as PKCS#11 key {KeyLabel} on token {TokenLabel}")]
    public static partial void Created(ILogger logger, string ringId, uint version, string keyLabel, string tokenLabel);

    [LoggerMessage(EventId = 7103, Level = LogLevel.Information, Message = "Destroyed PKCS#11 key {KeyLabel} (version {Version} of master key {RingId}) on token {TokenLabel}")]
    public static partial void Destroyed(ILogger logger, string ringId, uint version, string keyLabel, string tokenLabel);

    [LoggerMessage(EventId = 7104, Level = LogLevel.Warning, Message = "Closed a PKCS#11 session of token {TokenLabel} after {Function} returned {ReturnValue}")]
    public static partial void SessionClosed(ILogger logger, string tokenLabel, string function, string returnValue);
}
