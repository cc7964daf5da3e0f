namespace Gatehouse.Storage;

/// <summary>
/// The one storage contract every Gatehouse instance reads, writes and watches. It follows etcd's v3 model so that
/// the embedded SQLite store and an etcd cluster are interchangeable.
/// </summary>
/// <remarks>
/// <para><b>Revisions.</b> The store has one revision counter. Every successful <see cref="CommitAsync"/> that
/// changes something advances it by exactly one; every key written or deleted by that commit carries the new
/// revision as its <see cref="StoreEntry.ModRevision"/>. Revisions never go back and are never reused.</para>
/// <para><b>Not found.</b> <see cref="GetAsync"/> returns <see langword="null"/> for a missing key; no method throws
/// for "not found". A condition on a missing key compares against <see cref="StoreCondition.Absent"/> (mod revision 0).</para>
/// <para><b>Atomicity.</b> A <see cref="StoreTransaction"/> is all or nothing: either every condition holds and
/// every operation is applied at one revision, or nothing changes and <see cref="CommitResult.Succeeded"/> is false.</para>
/// <para><b>Watch.</b> <see cref="WatchAsync"/> yields every change under a prefix with a revision greater than the
/// one given, in revision order, each exactly once. A consumer that remembers the last revision it applied and
/// watches again from it misses nothing and applies nothing twice. If the store has compacted its history past
/// that revision the watch throws <see cref="StoreCompactedException"/>: the consumer reloads the prefix with
/// <see cref="ListAsync"/> and watches from the revision of that read.</para>
/// <para><b>Leases.</b> A lease lives for its TTL unless kept alive. When it expires or is revoked, every key
/// attached to it is deleted in one revision, and watchers see the deletes. Locks are keys attached to a lease.</para>
/// <para><b>Concurrency and cancellation.</b> Every member is safe to call concurrently. Cancellation aborts the
/// wait, never a commit half-way: a cancelled commit either happened entirely or not at all.</para>
/// <para><b>Limits.</b> Keys follow <see cref="StoreKeys.Validate"/>; a value has at most
/// <see cref="StoreLimits.MaxValueBytes"/> bytes (etcd's request limit leaves room for that); a transaction has at
/// most <see cref="StoreLimits.MaxOperations"/> operations. Larger requests throw <see cref="ArgumentException"/>.</para>
/// <para><b>Availability.</b> When the backing store cannot be reached, members throw
/// <see cref="StoreUnavailableException"/>.</para>
/// </remarks>
public interface IStore : IAsyncDisposable
{
    /// <summary>Reads one key. Returns <see langword="null"/> when it does not exist.</summary>
    ValueTask<StoreEntry?> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Reads every key that starts with <paramref name="prefix"/>, in key order, as of one revision.</summary>
    ValueTask<StoreRange> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Applies a transaction atomically when all its conditions hold.</summary>
    ValueTask<CommitResult> CommitAsync(StoreTransaction transaction, CancellationToken cancellationToken = default);

    /// <summary>Streams the changes under <paramref name="prefix"/> with a revision greater than
    /// <paramref name="afterRevision"/>, until cancelled.</summary>
    IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long afterRevision, CancellationToken cancellationToken = default);

    /// <summary>Grants a lease that expires after <paramref name="ttl"/> unless kept alive.</summary>
    ValueTask<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default);

    /// <summary>Restarts a lease's TTL. Returns false when the lease has already expired or been revoked.</summary>
    ValueTask<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default);

    /// <summary>Revokes a lease now, deleting every key attached to it. Revoking an unknown lease does nothing.</summary>
    ValueTask RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default);
}

/// <summary>A key, its value and its revisions.</summary>
/// <param name="Key">The full key path.</param>
/// <param name="Value">The stored bytes.</param>
/// <param name="CreateRevision">The revision at which the key was created (since its last delete).</param>
/// <param name="ModRevision">The revision of its last change.</param>
/// <param name="Version">How many times it was written since it was created, starting at 1.</param>
/// <param name="LeaseId">The lease it is attached to, or 0.</param>
public sealed record StoreEntry(string Key, ReadOnlyMemory<byte> Value, long CreateRevision, long ModRevision, long Version, long LeaseId);

/// <summary>The keys under a prefix as of <paramref name="Revision"/>.</summary>
public sealed record StoreRange(IReadOnlyList<StoreEntry> Entries, long Revision);

/// <summary>What a watch reports.</summary>
public enum StoreEventKind
{
    /// <summary>The key was created or overwritten.</summary>
    Put,

    /// <summary>The key was deleted (explicitly or by its lease ending).</summary>
    Delete,
}

/// <summary>One change seen by a watch. For deletes, <see cref="Entry"/> has an empty value.</summary>
public sealed record StoreEvent(StoreEventKind Kind, StoreEntry Entry)
{
    /// <summary>The revision of the change.</summary>
    public long Revision => Entry.ModRevision;
}

/// <summary>The outcome of a commit.</summary>
/// <param name="Succeeded">Whether every condition held and the operations were applied.</param>
/// <param name="Revision">The store's revision after the commit (the new revision when it succeeded).</param>
public readonly record struct CommitResult(bool Succeeded, long Revision);

/// <summary>Thrown by a watch whose start revision has been compacted away.</summary>
public sealed class StoreCompactedException(long compactedRevision)
    : Exception($"The store's history was compacted up to revision {compactedRevision}; reload and watch again.")
{
    /// <summary>The oldest revision the store can no longer replay.</summary>
    public long CompactedRevision { get; } = compactedRevision;
}

/// <summary>Thrown by a commit that attaches a key to a lease that has expired or never existed.</summary>
public sealed class StoreLeaseNotFoundException(long leaseId)
    : Exception($"Lease {leaseId:x} does not exist (it expired or was revoked).")
{
    /// <summary>The lease that was asked for.</summary>
    public long LeaseId { get; } = leaseId;
}

/// <summary>Thrown when the backing store cannot be reached or refuses service.</summary>
public sealed class StoreUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException);

/// <summary>Limits every store honours, so that what works on SQLite also works on etcd.</summary>
public static class StoreLimits
{
    /// <summary>The largest value.</summary>
    public const int MaxValueBytes = 1024 * 1024;

    /// <summary>The most operations in one transaction (etcd's default --max-txn-ops is 128).</summary>
    public const int MaxOperations = 128;
}
