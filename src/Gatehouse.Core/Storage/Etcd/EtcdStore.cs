using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using dotnet_etcd;
using dotnet_etcd.interfaces;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mvccpb;

namespace Gatehouse.Storage.Etcd;

/// <summary>
/// <see cref="IStore"/> on an etcd v3 cluster: etcd's revisions, transactions, watches and leases, one to one.
/// Every store key lives under <see cref="EtcdStoreOptions.KeyPrefix"/>.
/// </summary>
/// <remarks>
/// <para>Each endpoint gets its own gRPC channel. A call goes to the member that answered last and moves on to the
/// next one when a member cannot be reached, until <see cref="EtcdStoreOptions.RequestTimeout"/> has passed; then
/// it throws <see cref="StoreUnavailableException"/> naming the endpoints. Reads, lease calls and watches move on
/// after any transport failure. A commit moves on only when it cannot have been applied (no connection, no
/// leader); when its fate is unknown (the connection broke after it was sent) it throws
/// <see cref="StoreUnavailableException"/> at once, and the caller re-reads before it tries again.</para>
/// <para>A watch whose stream breaks resumes on another member from the last revision it delivered, so it never
/// misses or repeats an event; it throws <see cref="StoreUnavailableException"/> when no member takes it back within
/// the timeout, and <see cref="StoreCompactedException"/> when the history it needs is gone.</para>
/// </remarks>
public sealed class EtcdStore : IStore
{
    /// <summary>How many keys one page of <see cref="ListAsync"/> reads (all pages at one revision).</summary>
    public const int ListPageSize = 1000;

    private static readonly TimeSpan FirstRetryPause = TimeSpan.FromMilliseconds(25);
    private static readonly TimeSpan MaxRetryPause = TimeSpan.FromMilliseconds(500);

    private readonly EtcdStoreOptions _options;
    private readonly Member[] _members;
    private volatile ILogger _logger;
    private readonly CancellationTokenSource _disposed = new();
    private readonly SemaphoreSlim _authentication = new(1, 1);
    private string? _token;
    private int _preferred;
    private int _disposeStarted;

    private EtcdStore(EtcdStoreOptions options, Member[] members, ILogger logger)
    {
        _options = options;
        _members = members;
        _logger = logger;
    }

    /// <summary>The options the store was opened with.</summary>
    public EtcdStoreOptions Options => _options;

    /// <summary>Sends the store's fail-over and watch-resume events to <paramref name="logger"/> from now on (a host
    /// opens the store before its logging is built).</summary>
    public void UseLogger(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        _logger = logger;
    }

    /// <summary>Opens a store on the cluster at <paramref name="options"/>' endpoints. Nothing is sent yet: an
    /// unreachable cluster shows in the first call.</summary>
    /// <exception cref="ArgumentException">The options cannot work.</exception>
    /// <exception cref="StoreUnavailableException">A TLS file cannot be read.</exception>
    public static EtcdStore Open(EtcdStoreOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var (trust, clientCertificate) = LoadTlsFiles(options);
        var members = new Member[options.Endpoints.Count];
        var connectTimeout = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(250).Ticks, options.RequestTimeout.Ticks / members.Length));
        for (var i = 0; i < members.Length; i++)
        {
            members[i] = Member.Create(options.Endpoints[i], trust, clientCertificate, connectTimeout);
        }

        return new EtcdStore(options, members, logger ?? NullLogger.Instance);
    }

    /// <inheritdoc />
    public async ValueTask<StoreEntry?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        StoreKeys.Validate(key);
        var request = new RangeRequest { Key = EtcdKey(key) };
        try
        {
            var response = await InvokeAsync("read", (c, o) => c.KVClient.RangeAsync(request, o).ResponseAsync, Retry.Always, cancellationToken);
            return response.Kvs.Count == 0 ? null : ToEntry(response.Kvs[0]);
        }
        catch (RpcException ex)
        {
            throw Refused("read", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<StoreRange> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        StoreKeys.Validate(prefix);
        var start = EtcdKey(prefix);
        var end = PrefixEnd(start);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ListPagesAsync(start, end, cancellationToken);
            }
            catch (RpcException ex) when (IsCompacted(ex) && attempt < 3)
            {
                // The revision of the first page was compacted before the last page was read: read again.
            }
            catch (RpcException ex)
            {
                throw Refused("list", ex);
            }
        }
    }

    private async Task<StoreRange> ListPagesAsync(ByteString start, ByteString end, CancellationToken cancellationToken)
    {
        // Pages keep every response far below gRPC's message limit however large the prefix, and all are read at
        // the revision of the first, so together they are one snapshot.
        var entries = new List<StoreEntry>();
        var revision = 0L;
        var from = start;
        while (true)
        {
            var request = new RangeRequest { Key = from, RangeEnd = end, Limit = ListPageSize, Revision = revision };
            var response = await InvokeAsync("list", (c, o) => c.KVClient.RangeAsync(request, o).ResponseAsync, Retry.Always, cancellationToken);
            if (revision == 0)
            {
                revision = response.Header.Revision;
            }

            foreach (var kv in response.Kvs)
            {
                entries.Add(ToEntry(kv));
            }

            if (!response.More || response.Kvs.Count == 0)
            {
                return new StoreRange(entries, revision);
            }

            from = KeyAfter(response.Kvs[^1].Key);
        }
    }

    /// <inheritdoc />
    public async ValueTask<CommitResult> CommitAsync(StoreTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        var request = new TxnRequest();
        foreach (var condition in transaction.Conditions)
        {
            // A missing key compares as mod revision 0, which is what StoreCondition.Absent asks for.
            request.Compare.Add(new Compare
            {
                Key = EtcdKey(condition.Key),
                Target = Compare.Types.CompareTarget.Mod,
                Result = Compare.Types.CompareResult.Equal,
                ModRevision = condition.ModRevision,
            });
        }

        // etcd refuses two operations on one key in a transaction; applied in order, the last one decides anyway.
        var lastIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < transaction.Operations.Count; i++)
        {
            lastIndex[transaction.Operations[i].Key] = i;
        }

        for (var i = 0; i < transaction.Operations.Count; i++)
        {
            var operation = transaction.Operations[i];
            if (lastIndex[operation.Key] != i)
            {
                continue;
            }

            request.Success.Add(operation.IsDelete
                ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = EtcdKey(operation.Key) } }
                : new RequestOp { RequestPut = new PutRequest { Key = EtcdKey(operation.Key), Value = ByteString.CopyFrom(operation.Value!.Value.Span), Lease = operation.LeaseId } });
        }

        try
        {
            // A transaction that changes nothing (deletes of missing keys) leaves etcd's revision where it was.
            var response = await InvokeAsync("commit", (c, o) => c.KVClient.TxnAsync(request, o).ResponseAsync, Retry.WhenNotSent, cancellationToken);
            return new CommitResult(response.Succeeded, response.Header.Revision);
        }
        catch (RpcException ex) when (IsLeaseNotFound(ex))
        {
            throw new StoreLeaseNotFoundException(await FindMissingLeaseAsync(transaction, cancellationToken));
        }
        catch (RpcException ex)
        {
            throw Refused("commit", ex);
        }
    }

    private async Task<long> FindMissingLeaseAsync(StoreTransaction transaction, CancellationToken cancellationToken)
    {
        var leases = transaction.Operations.Where(o => o.LeaseId != 0).Select(o => o.LeaseId).Distinct().ToList();
        if (leases.Count > 1)
        {
            foreach (var lease in leases)
            {
                var request = new LeaseTimeToLiveRequest { ID = lease };
                var response = await InvokeAsync("lease lookup", (c, o) => c.LeaseClient.LeaseTimeToLiveAsync(request, o).ResponseAsync, Retry.Always, cancellationToken);
                if (response.TTL < 0)
                {
                    return lease;
                }
            }
        }

        return leases.FirstOrDefault();
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long afterRevision, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        StoreKeys.Validate(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(afterRevision);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposeStarted) != 0, this);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        var start = EtcdKey(prefix);
        var end = PrefixEnd(start);
        var last = afterRevision;
        var member = Volatile.Read(ref _preferred);
        DateTime? failingSince = null;
        var pause = FirstRetryPause;
        WatchSession? session = null;
        try
        {
            while (true)
            {
                if (session is null)
                {
                    session = await OpenWatchAsync(prefix, start, end, last + 1, member, linked.Token, cancellationToken);
                    if (session is null)
                    {
                        yield break; // the store was disposed
                    }

                    if (failingSince is not null)
                    {
                        EtcdLog.WatchResumed(_logger, prefix, last, session.Member.Name);
                    }
                }

                var (response, failure) = await session.ReadAsync(linked.Token);
                if (response is { CompactRevision: > 0 })
                {
                    throw new StoreCompactedException(response.CompactRevision);
                }

                if (response is null || response.Canceled)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (_disposed.IsCancellationRequested)
                    {
                        yield break;
                    }

                    // The member went away (or lost its leader): resume on the next one from the last revision
                    // delivered. A session that worked for a while starts a new outage; one that broke at once
                    // counts against the current one.
                    var now = DateTime.UtcNow;
                    var reason = failure is null ? response?.CancelReason ?? "the stream ended" : Describe(failure);
                    if (session.Delivered || now - session.OpenedAt > _options.RequestTimeout || failingSince is null)
                    {
                        failingSince = now;
                        pause = FirstRetryPause;
                    }
                    else if (now - failingSince > _options.RequestTimeout)
                    {
                        throw new StoreUnavailableException($"The etcd watch on '{prefix}' keeps breaking ({_options.EndpointList}): {reason}", failure);
                    }

                    EtcdLog.WatchBroken(_logger, prefix, session.Member.Name, reason);
                    member = (Array.IndexOf(_members, session.Member) + 1) % _members.Length;
                    session.Dispose();
                    session = null;
                    await Task.Delay(pause, linked.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, MaxRetryPause.Ticks));
                    continue;
                }

                session.Delivered = true;
                foreach (var change in response.Events)
                {
                    if (change.Kv.ModRevision <= session.ResumedAfter)
                    {
                        continue; // never again what was delivered before a resume
                    }

                    last = change.Kv.ModRevision;
                    yield return change.Type == Event.Types.EventType.Put
                        ? new StoreEvent(StoreEventKind.Put, ToEntry(change.Kv))
                        : new StoreEvent(StoreEventKind.Delete, new StoreEntry(StoreKey(change.Kv.Key), ReadOnlyMemory<byte>.Empty, 0, change.Kv.ModRevision, 0, 0));
                }
            }
        }
        finally
        {
            session?.Dispose();
        }
    }

    /// <summary>Opens a watch on the first member that takes it; null when the store was disposed meanwhile.</summary>
    private async Task<WatchSession?> OpenWatchAsync(string prefix, ByteString start, ByteString end, long startRevision, int firstMember, CancellationToken token, CancellationToken callerToken)
    {
        var deadline = DateTime.UtcNow + _options.RequestTimeout;
        var pause = FirstRetryPause;
        var reauthenticated = false;
        Exception? lastError = null;
        var request = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = start, RangeEnd = end, StartRevision = startRevision } };
        for (var attempt = 0; ; attempt++)
        {
            var member = _members[(firstMember + attempt) % _members.Length];
            AsyncDuplexStreamingCall<WatchRequest, WatchResponse>? call = null;
            string? authToken = null;
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(token);
            wait.CancelAfter(Remaining(deadline));
            try
            {
                authToken = await TokenAsync(wait.Token);

                // hasleader: a member cut off from the cluster's leader ends the stream instead of going quiet.
                var headers = new Metadata { { "hasleader", "true" } };
                if (authToken is not null)
                {
                    headers.Add("token", authToken);
                }

                call = member.Connection.WatchClient.Watch(new CallOptions(headers, cancellationToken: token));
                await call.RequestStream.WriteAsync(request, wait.Token);
                if (await call.ResponseStream.MoveNext(wait.Token))
                {
                    var created = call.ResponseStream.Current;
                    if (created.CompactRevision > 0)
                    {
                        throw new StoreCompactedException(created.CompactRevision);
                    }

                    if (created.Created && !created.Canceled)
                    {
                        var session = new WatchSession(call, member, startRevision - 1);
                        call = null;
                        return session;
                    }

                    lastError = new StoreUnavailableException($"etcd at {member.Name} refused the watch: {created.CancelReason}");
                }
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException && callerToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The etcd watch was cancelled.", ex, callerToken);
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException or ObjectDisposedException && token.IsCancellationRequested)
            {
                return null;
            }
            catch (RpcException ex) when (authToken is not null && IsInvalidToken(ex) && !reauthenticated)
            {
                reauthenticated = true;
                Interlocked.CompareExchange(ref _token, null, authToken);
                attempt--;
                continue;
            }
            catch (Exception ex) when (ex is OperationCanceledException || Classify(ex) != Failure.Final)
            {
                lastError = ex;
                EtcdLog.MemberFailed(_logger, member.Name, "watch", ex is OperationCanceledException ? "timed out" : Describe(ex));
            }
            catch (RpcException ex)
            {
                throw Refused("watch", ex);
            }
            finally
            {
                call?.Dispose();
            }

            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero)
            {
                throw new StoreUnavailableException($"No etcd member took the watch on '{prefix}' within {_options.RequestTimeout.TotalSeconds:0.#} s ({_options.EndpointList}): {Describe(lastError)}", lastError);
            }

            if ((attempt + 1) % _members.Length == 0)
            {
                await Task.Delay(Min(pause, remaining), token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                callerToken.ThrowIfCancellationRequested();
                if (token.IsCancellationRequested)
                {
                    return null;
                }

                pause = Min(pause * 2, MaxRetryPause);
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttl, TimeSpan.FromMilliseconds(1));

        // etcd counts whole seconds (and raises very short TTLs to its minimum, about 1.5 election timeouts).
        var request = new LeaseGrantRequest { TTL = (long)Math.Ceiling(ttl.TotalSeconds) };
        LeaseGrantResponse response;
        try
        {
            // Retried like a read: a grant whose answer was lost leaves a lease nobody uses, which expires.
            response = await InvokeAsync("lease grant", (c, o) => c.LeaseClient.LeaseGrantAsync(request, o).ResponseAsync, Retry.Always, cancellationToken);
        }
        catch (RpcException ex)
        {
            throw Refused("lease grant", ex);
        }

        return string.IsNullOrEmpty(response.Error)
            ? response.ID
            : throw new StoreUnavailableException($"etcd refused a lease: {response.Error}");
    }

    /// <inheritdoc />
    public async ValueTask<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        var request = new LeaseKeepAliveRequest { ID = leaseId };
        try
        {
            return await InvokeAsync("lease keep-alive", async (c, o) =>
            {
                // One request on etcd's keep-alive stream; the answer carries the renewed TTL, 0 for an unknown lease.
                using var call = c.LeaseClient.LeaseKeepAlive(o);
                await call.RequestStream.WriteAsync(request, o.CancellationToken);
                await call.RequestStream.CompleteAsync();
                return await call.ResponseStream.MoveNext(o.CancellationToken) && call.ResponseStream.Current.TTL > 0;
            }, Retry.Always, cancellationToken);
        }
        catch (RpcException ex) when (IsLeaseNotFound(ex))
        {
            return false;
        }
        catch (RpcException ex)
        {
            throw Refused("lease keep-alive", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        var request = new LeaseRevokeRequest { ID = leaseId };
        try
        {
            await InvokeAsync("lease revoke", (c, o) => c.LeaseClient.LeaseRevokeAsync(request, o).ResponseAsync, Retry.Always, cancellationToken);
        }
        catch (RpcException ex) when (IsLeaseNotFound(ex))
        {
            // Unknown, expired or revoked by an earlier attempt whose answer was lost: nothing to do.
        }
        catch (RpcException ex)
        {
            throw Refused("lease revoke", ex);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 1)
        {
            return ValueTask.CompletedTask;
        }

        _disposed.Cancel();
        foreach (var member in _members)
        {
            member.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private enum Retry
    {
        /// <summary>Reads and idempotent calls: try the next member after any transport failure.</summary>
        Always,

        /// <summary>Writes: try the next member only when the call cannot have been applied.</summary>
        WhenNotSent,
    }

    private enum Failure
    {
        /// <summary>The request never reached a member that could apply it (no connection, no leader).</summary>
        NotSent,

        /// <summary>The transport broke or the deadline passed after the request was sent.</summary>
        Unknown,

        /// <summary>etcd answered with an error; trying elsewhere would get the same answer.</summary>
        Final,
    }

    /// <summary>Runs <paramref name="call"/> on the preferred member, moving to the next ones on transport failures
    /// as <paramref name="retry"/> allows, until the request timeout. etcd's own errors come out as
    /// <see cref="RpcException"/> for the caller to map.</summary>
    private async Task<T> InvokeAsync<T>(string operation, Func<IConnection, CallOptions, Task<T>> call, Retry retry, CancellationToken cancellationToken, bool authenticated = true)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposeStarted) != 0, this);
        var deadline = DateTime.UtcNow + _options.RequestTimeout;
        var first = Volatile.Read(ref _preferred);
        var pause = FirstRetryPause;
        var reauthenticated = false;
        Exception? lastError = null;
        for (var attempt = 0; ; attempt++)
        {
            var index = (first + attempt) % _members.Length;
            var member = _members[index];
            string? authToken = null;
            try
            {
                Metadata? headers = null;
                if (authenticated && (authToken = await TokenAsync(cancellationToken)) is not null)
                {
                    headers = new Metadata { { "token", authToken } };
                }

                var result = await call(member.Connection, new CallOptions(headers, deadline, cancellationToken));
                if (index != first && Interlocked.CompareExchange(ref _preferred, index, first) == first)
                {
                    EtcdLog.MemberSwitched(_logger, _members[first].Name, member.Name);
                }

                return result;
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException or IOException && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException($"The etcd {operation} was cancelled.", ex, cancellationToken);
            }
            catch (RpcException ex) when (authToken is not null && IsInvalidToken(ex) && !reauthenticated)
            {
                // Tokens expire (simple tokens after 5 minutes idle): get a new one and try the same member again.
                EtcdLog.TokenRefused(_logger, member.Name, operation);
                reauthenticated = true;
                Interlocked.CompareExchange(ref _token, null, authToken);
                attempt--;
                continue;
            }
            catch (Exception ex) when (Classify(ex) == Failure.NotSent || (Classify(ex) == Failure.Unknown && retry == Retry.Always))
            {
                lastError = ex;
                EtcdLog.MemberFailed(_logger, member.Name, operation, Describe(ex));
            }
            catch (Exception ex) when (Classify(ex) == Failure.Unknown)
            {
                throw new StoreUnavailableException($"The etcd {operation} sent to {member.Name} got no answer, so it may or may not have been applied: {Describe(ex)}", ex);
            }

            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            if ((attempt + 1) % _members.Length == 0)
            {
                // Every member failed once: give an election or a restart a moment before the next round.
                await Task.Delay(Min(pause, remaining), cancellationToken);
                pause = Min(pause * 2, MaxRetryPause);
            }
        }

        throw new StoreUnavailableException($"etcd could not be reached for {operation} within {_options.RequestTimeout.TotalSeconds:0.#} s ({_options.EndpointList}): {Describe(lastError)}", lastError);
    }

    /// <summary>The auth token to send, authenticating first when there is none; null without credentials.</summary>
    private async ValueTask<string?> TokenAsync(CancellationToken cancellationToken)
    {
        if (_options.Username is null)
        {
            return null;
        }

        if (Volatile.Read(ref _token) is { } token)
        {
            return token;
        }

        await _authentication.WaitAsync(cancellationToken);
        try
        {
            if (Volatile.Read(ref _token) is { } fresh)
            {
                return fresh;
            }

            var request = new AuthenticateRequest { Name = _options.Username, Password = _options.Password };
            try
            {
                var response = await InvokeAsync("authentication", (c, o) => c.AuthClient.AuthenticateAsync(request, o).ResponseAsync, Retry.Always, cancellationToken, authenticated: false);
                Volatile.Write(ref _token, response.Token);
                return response.Token;
            }
            catch (RpcException ex)
            {
                throw new StoreUnavailableException($"etcd ({_options.EndpointList}) did not authenticate user '{_options.Username}': {Describe(ex)}", ex);
            }
        }
        finally
        {
            _authentication.Release();
        }
    }

    private static Failure Classify(Exception exception)
    {
        if (exception is not RpcException ex)
        {
            // Streaming calls let transport errors out unwrapped (a write to a connection that just died).
            return exception is IOException or HttpRequestException ? NeverConnected(exception) ? Failure.NotSent : Failure.Unknown : Failure.Final;
        }

        var detail = ex.Status.Detail ?? "";
        switch (ex.StatusCode)
        {
            case StatusCode.Unavailable:
                // etcd's own "come back later" answers are given before anything is proposed.
                if (detail.Contains("no leader", StringComparison.Ordinal) || detail.Contains("not capable", StringComparison.Ordinal)
                    || detail.Contains("leader changed", StringComparison.Ordinal))
                {
                    return Failure.NotSent;
                }

                return NeverConnected(ex.Status.DebugException ?? ex.InnerException) ? Failure.NotSent : Failure.Unknown;
            case StatusCode.ResourceExhausted when detail.Contains("too many requests", StringComparison.Ordinal):
                return Failure.NotSent;
            case StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled:
                return Failure.Unknown;
            default:
                return Failure.Final;
        }
    }

    /// <summary>Whether the exception chain shows that no connection was made (so nothing was sent).</summary>
    private static bool NeverConnected(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case SocketException socket when socket.SocketErrorCode is SocketError.ConnectionRefused or SocketError.HostUnreachable
                    or SocketError.NetworkUnreachable or SocketError.HostNotFound or SocketError.HostDown or SocketError.TryAgain
                    or SocketError.NoData or SocketError.AddressNotAvailable or SocketError.TimedOut:
                case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError }:
                case AuthenticationException:
                    return true;
            }
        }

        return false;
    }

    private static bool IsLeaseNotFound(RpcException ex) =>
        ex.StatusCode == StatusCode.NotFound && ex.Status.Detail.Contains("lease not found", StringComparison.Ordinal);

    private static bool IsCompacted(RpcException ex) =>
        ex.StatusCode == StatusCode.OutOfRange && ex.Status.Detail.Contains("compacted", StringComparison.Ordinal);

    private static bool IsInvalidToken(RpcException ex) =>
        ex.StatusCode == StatusCode.Unauthenticated && ex.Status.Detail.Contains("invalid auth token", StringComparison.Ordinal);

    /// <summary>Maps an error etcd answered with: limits are the caller's mistake, anything else is refused service.</summary>
    private Exception Refused(string operation, RpcException ex) => ex.StatusCode switch
    {
        StatusCode.InvalidArgument when ex.Status.Detail.Contains("too many operations", StringComparison.Ordinal) || ex.Status.Detail.Contains("too large", StringComparison.Ordinal)
            => new ArgumentException($"etcd refused the {operation}: {ex.Status.Detail}", ex),
        _ => new StoreUnavailableException($"etcd ({_options.EndpointList}) refused the {operation}: {Describe(ex)}", ex),
    };

    private static string Describe(Exception? exception)
    {
        if (exception is not RpcException rpc)
        {
            return exception is null ? "no member answered" : exception.GetBaseException().Message;
        }

        var detail = $"{rpc.StatusCode}: {rpc.Status.Detail}";
        var cause = rpc.Status.DebugException;
        while (cause?.InnerException is not null)
        {
            cause = cause.InnerException;
        }

        return cause is null || rpc.Status.Detail.Contains(cause.Message, StringComparison.Ordinal) ? detail : $"{detail} ({cause.Message})";
    }

    private ByteString EtcdKey(string key) => ByteString.CopyFromUtf8(_options.KeyPrefix + key);

    private string StoreKey(ByteString key)
    {
        var text = key.ToStringUtf8();
        return _options.KeyPrefix.Length == 0 ? text : text[_options.KeyPrefix.Length..];
    }

    private StoreEntry ToEntry(KeyValue kv) => new(StoreKey(kv.Key), kv.Value.Memory, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease);

    /// <summary>The end of the range of keys that start with <paramref name="start"/> (etcd's prefix range end).</summary>
    private static ByteString PrefixEnd(ByteString start)
    {
        var bytes = start.ToByteArray();
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xff)
            {
                bytes[i]++;
                return ByteString.CopyFrom(bytes, 0, i + 1);
            }
        }

        return ByteString.CopyFrom(0);
    }

    /// <summary>The smallest key after <paramref name="key"/>.</summary>
    private static ByteString KeyAfter(ByteString key)
    {
        var bytes = new byte[key.Length + 1];
        key.Span.CopyTo(bytes);
        return ByteString.CopyFrom(bytes);
    }

    private static TimeSpan Remaining(DateTime deadline)
    {
        var remaining = deadline - DateTime.UtcNow;
        return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static (X509Certificate2Collection? Trust, X509Certificate2? Client) LoadTlsFiles(EtcdStoreOptions options)
    {
        X509Certificate2Collection? trust = null;
        try
        {
            if (options.CaFile is not null)
            {
                trust = [];
                trust.ImportFromPemFile(options.CaFile);
                if (trust.Count == 0)
                {
                    throw new StoreUnavailableException($"The etcd CA file '{options.CaFile}' holds no certificate.");
                }
            }

            var client = options.CertificateFile is null ? null : X509Certificate2.CreateFromPemFile(options.CertificateFile, options.KeyFile);
            return (trust, client);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new StoreUnavailableException($"The etcd TLS files ({options.CaFile ?? options.CertificateFile}) cannot be read: {ex.Message}", ex);
        }
    }

    /// <summary>One endpoint: its channel and dotnet-etcd's clients over it.</summary>
    private sealed class Member : IDisposable
    {
        private readonly GrpcChannel _channel;
        private readonly EtcdClient _client;

        private Member(Uri endpoint, GrpcChannel channel)
        {
            Name = endpoint.GetLeftPart(UriPartial.Authority);
            _channel = channel;
            _client = new EtcdClient(channel.CreateCallInvoker());
            Connection = _client.GetConnection();
        }

        public string Name { get; }

        public IConnection Connection { get; }

        public static Member Create(Uri endpoint, X509Certificate2Collection? trust, X509Certificate2? clientCertificate, TimeSpan connectTimeout)
        {
            var handler = new SocketsHttpHandler
            {
                UseProxy = false,
                AllowAutoRedirect = false,
                ConnectTimeout = connectTimeout,
                EnableMultipleHttp2Connections = true,

                // A member that vanishes without closing its connections (power loss, partition) is noticed by
                // pings while calls or watches are open. etcd accepts pings every 5 s or slower.
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            };
            if (endpoint.Scheme == Uri.UriSchemeHttps)
            {
                var ssl = new SslClientAuthenticationOptions();
                if (trust is not null)
                {
                    ssl.CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
                    ssl.CertificateChainPolicy.CustomTrustStore.AddRange(trust);
                }

                if (clientCertificate is not null)
                {
                    ssl.ClientCertificateContext = SslStreamCertificateContext.Create(clientCertificate, null);
                }

                handler.SslOptions = ssl;
            }

            // A plain HttpClient (not gRPC's balancer): every call connects afresh when the member's connection is
            // gone, so a restarted member is used again at once, and failing over is this class's job.
            var channel = GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
            {
                HttpClient = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan },
                DisposeHttpClient = true,
                MaxReceiveMessageSize = null,
            });
            return new Member(endpoint, channel);
        }

        public void Dispose()
        {
            _client.Dispose();
            _channel.Dispose();
        }
    }

    /// <summary>One watch stream on one member.</summary>
    private sealed class WatchSession(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, Member member, long resumedAfter) : IDisposable
    {
        public Member Member { get; } = member;

        /// <summary>The last revision delivered before this session (all of its events; a response never splits one).</summary>
        public long ResumedAfter { get; } = resumedAfter;

        public DateTime OpenedAt { get; } = DateTime.UtcNow;

        /// <summary>Whether any response came after the one that created the watch.</summary>
        public bool Delivered { get; set; }

        /// <summary>The next response, or null and why the stream ended.</summary>
        public async Task<(WatchResponse? Response, Exception? Failure)> ReadAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await call.ResponseStream.MoveNext(cancellationToken) ? (call.ResponseStream.Current, null) : (null, null);
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
            {
                return (null, ex);
            }
        }

        public void Dispose() => call.Dispose();
    }
}

internal static partial class EtcdLog
{
    [LoggerMessage(EventId = 1101, Level = LogLevel.Debug, Message = "etcd member {Endpoint} failed a {Operation}: {Reason}")]
    public static partial void MemberFailed(ILogger logger, string endpoint, string operation, string reason);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "etcd member {From} is not answering; using {To}")]
    public static partial void MemberSwitched(ILogger logger, string from, string to);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "etcd watch on {Prefix} broke at {Endpoint} ({Reason}); resuming on another member")]
    public static partial void WatchBroken(ILogger logger, string prefix, string endpoint, string reason);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Debug, Message = "etcd member {Endpoint} refused the auth token for a {Operation} (expired); authenticating again")]
    public static partial void TokenRefused(ILogger logger, string endpoint, string operation);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Information, Message = "etcd watch on {Prefix} resumed after revision {Revision} at {Endpoint}")]
    public static partial void WatchResumed(ILogger logger, string prefix, long revision, string endpoint);
}
