using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace Gatehouse.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite database in WAL mode, implementing <see cref="IStore"/> with a revision counter,
/// a change history for watches, and leases. Suited to one instance; several processes may share the file
/// (writes serialize through SQLite's lock, watches poll), but only one should run lease expiry.
/// </summary>
public sealed class SqliteStore : IStore
{
    /// <summary>How many revisions of history are kept for watchers to resume from.</summary>
    public const int DefaultHistoryRevisions = 50_000;

    private const int HistoryBatchSize = 1000;
    private const int MaxIdleReaders = 8;
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LeaseSweepInterval = TimeSpan.FromMilliseconds(250);

    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private readonly int _historyRevisions;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ITimer _leaseSweeper;
    private readonly CancellationTokenSource _disposed = new();
    private readonly SqliteEventLog _log;
    private readonly Stack<SqliteSession> _idleReaders = new();
    private SqliteSession? _writer; // used under _writeLock only
    private TaskCompletionSource _changed = NewSignal();
    private int _commitsSinceCompaction;
    private int _disposeStarted;
    private volatile bool _closed;

    private SqliteStore(string connectionString, TimeProvider time, int historyRevisions)
    {
        _connectionString = connectionString;
        _time = time;
        _historyRevisions = historyRevisions;
        _log = new SqliteEventLog(after => Read(session => ReadHistory(session, "/", after)));
        _leaseSweeper = time.CreateTimer(static s => ((SqliteStore)s!).SweepLeasesInBackground(), this, LeaseSweepInterval, LeaseSweepInterval);
    }

    /// <summary>The database file.</summary>
    public string Path { get; private init; } = "";

    /// <summary>Opens (creating or migrating as needed) the store in <paramref name="path"/>.</summary>
    public static SqliteStore Open(string path, TimeProvider? time = null, int historyRevisions = DefaultHistoryRevisions)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(historyRevisions, 1);
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = false, // the store keeps its own open sessions, with their prepared statements
            DefaultTimeout = 30,
        }.ToString();

        try
        {
            using (var connection = new SqliteConnection(connectionString))
            {
                connection.Open();
                SqliteSchema.Migrate(connection);
            }

            return new SqliteStore(connectionString, time ?? TimeProvider.System, historyRevisions) { Path = path };
        }
        catch (SqliteException ex)
        {
            throw new StoreUnavailableException($"Cannot open the SQLite store '{path}': {ex.Message}", ex);
        }
    }

    /// <inheritdoc />
    public ValueTask<StoreEntry?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        StoreKeys.Validate(key);
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(session =>
        {
            var command = session.Command("SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key = $key");
            command.Parameters.AddWithValue("$key", key);
            using var reader = command.ExecuteReader();
            return reader.Read() ? ReadEntry(reader) : null;
        }));
    }

    /// <inheritdoc />
    public ValueTask<StoreRange> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        StoreKeys.Validate(prefix);
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(session => List(session, prefix)));
    }

    private static StoreRange List(SqliteSession session, string prefix)
    {
        using var transaction = session.Begin(deferred: true);
        var revision = SqliteSchema.ReadRevision(session, transaction);
        var command = session.Command("SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key >= $from AND key < $to ORDER BY key", transaction);
        AddPrefixRange(command, prefix);
        var entries = new List<StoreEntry>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                entries.Add(ReadEntry(reader));
            }
        }

        transaction.Commit();
        return new StoreRange(entries, revision);
    }

    /// <inheritdoc />
    public async ValueTask<CommitResult> CommitAsync(StoreTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var result = Write(session =>
            {
                using var tx = session.Begin(deferred: false);
                var revision = SqliteSchema.ReadRevision(session, tx);
                revision = ExpireLeases(session, tx, revision);
                foreach (var condition in transaction.Conditions)
                {
                    if (ReadModRevision(session, tx, condition.Key) != condition.ModRevision)
                    {
                        tx.Commit(); // keeps lease expiry that happened above
                        return new CommitResult(false, revision);
                    }
                }

                var newRevision = revision + 1;
                var seq = 0;
                foreach (var operation in transaction.Operations)
                {
                    if (operation.IsDelete)
                    {
                        if (DeleteKey(session, tx, operation.Key, newRevision, seq))
                        {
                            seq++;
                        }
                    }
                    else
                    {
                        PutKey(session, tx, operation, newRevision, seq++);
                    }
                }

                if (seq > 0)
                {
                    SqliteSchema.WriteRevision(session, tx, newRevision);
                    revision = newRevision;
                }

                tx.Commit();
                return new CommitResult(true, revision);
            });

            if (result.Succeeded && ++_commitsSinceCompaction >= 1000)
            {
                _commitsSinceCompaction = 0;
                try
                {
                    Write(Compact);
                }
                catch (StoreUnavailableException)
                {
                    // The commit has landed; compaction is housekeeping and runs again after the next 1000 commits.
                }
            }

            return result;
        }
        finally
        {
            _writeLock.Release();
            Signal();
        }
    }

    /// <inheritdoc />
    /// <remarks>Watchers share one in-memory tail of the history (<see cref="SqliteEventLog"/>): a change costs one
    /// history query for all of them. A watcher that starts from an older revision catches up from the history table.
    /// Another process writing the same file is seen within the poll interval.</remarks>
    public async IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long afterRevision, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        StoreKeys.Validate(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(afterRevision);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        var last = afterRevision;
        var polled = false;
        var batch = new List<StoreEvent>();
        while (true)
        {
            var signal = Volatile.Read(ref _changed).Task;
            await _log.RefreshAsync(polled, linked.Token);
            polled = false;
            batch.Clear();
            long upTo;
            if (!_log.TryRead(prefix, last, batch, out upTo))
            {
                var after = last;
                var history = Read(session => ReadHistory(session, prefix, after));
                if (history.CompactedPast)
                {
                    throw new StoreCompactedException(history.CompleteTo);
                }

                batch.AddRange(history.Events);
                upTo = history.CompleteTo;
            }

            foreach (var change in batch)
            {
                last = change.Revision;
                yield return change;
            }

            // Nothing under the prefix up to 'upTo' was left out: later reads start after it.
            last = Math.Max(last, upTo);
            if (batch.Count > 0)
            {
                continue;
            }

            try
            {
                await signal.WaitAsync(PollInterval, _time, linked.Token);
            }
            catch (TimeoutException)
            {
                polled = true; // another process may have written the file
            }
            catch (OperationCanceledException) when (_disposed.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                yield break;
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttl, TimeSpan.FromMilliseconds(1));
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            return Write(session =>
            {
                var command = session.Command("INSERT INTO leases(id, ttl_ms, expires_ms) VALUES ($id, $ttl, $expires)");
                var id = NewLeaseId();
                command.Parameters.AddWithValue("$id", id);
                command.Parameters.AddWithValue("$ttl", (long)ttl.TotalMilliseconds);
                command.Parameters.AddWithValue("$expires", NowMs() + (long)ttl.TotalMilliseconds);
                command.ExecuteNonQuery();
                return id;
            });
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            return Write(session =>
            {
                var command = session.Command("UPDATE leases SET expires_ms = $now + ttl_ms WHERE id = $id AND expires_ms > $now");
                command.Parameters.AddWithValue("$id", leaseId);
                command.Parameters.AddWithValue("$now", NowMs());
                return command.ExecuteNonQuery() == 1;
            });
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            Write(session =>
            {
                using var tx = session.Begin(deferred: false);
                var revision = SqliteSchema.ReadRevision(session, tx);
                revision = EndLease(session, tx, leaseId, revision);
                SqliteSchema.WriteRevision(session, tx, revision);
                tx.Commit();
                return revision;
            });
        }
        finally
        {
            _writeLock.Release();
            Signal();
        }
    }

    /// <summary>Drops history older than the retention, so watchers from before it must reload.</summary>
    private long Compact(SqliteSession session)
    {
        using var tx = session.Begin(deferred: false);
        var revision = SqliteSchema.ReadRevision(session, tx);
        var compactTo = Math.Max(0, revision - _historyRevisions);
        if (compactTo > SqliteSchema.ReadCompacted(session, tx))
        {
            var command = session.Command("DELETE FROM history WHERE rev <= $rev", tx);
            command.Parameters.AddWithValue("$rev", compactTo);
            command.ExecuteNonQuery();
            SqliteSchema.WriteCompacted(session, tx, compactTo);
        }

        tx.Commit();
        return compactTo;
    }

    /// <summary>Compacts now (tests and maintenance).</summary>
    internal async Task<long> CompactNowAsync()
    {
        await _writeLock.WaitAsync();
        try
        {
            return Write(Compact);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) == 1)
        {
            return;
        }

        await _leaseSweeper.DisposeAsync();
        await _disposed.CancelAsync();
        await _writeLock.WaitAsync();
        try
        {
            // Close the readers, then fold the WAL back into the main file and close the writer, so the directory
            // can be copied or deleted once the store is closed. A read still running closes its session when it
            // ends (see Read).
            _closed = true;
            CloseIdleReaders();
            _writer ??= SqliteSession.Open(_connectionString);
            _writer.Command("PRAGMA wal_checkpoint(TRUNCATE)").ExecuteNonQuery();
        }
        catch (SqliteException)
        {
            // Best effort on close: SQLite recovers the WAL on next open.
        }
        finally
        {
            _writer?.Dispose();
            _writer = null;
            _writeLock.Release();
        }
    }

    /// <summary>The history under <paramref name="prefix"/> after <paramref name="afterRevision"/> (-1: none, just the
    /// current revision), whole revisions only; when the history was compacted past it, <see cref="HistoryBatch.CompactedPast"/>
    /// with the compacted revision as <see cref="HistoryBatch.CompleteTo"/>.</summary>
    private static HistoryBatch ReadHistory(SqliteSession session, string prefix, long afterRevision)
    {
        using var tx = session.Begin(deferred: true);
        var revision = SqliteSchema.ReadRevision(session, tx);
        var events = new List<StoreEvent>();
        if (afterRevision < 0)
        {
            tx.Commit();
            return new HistoryBatch(events, revision, Partial: false, CompactedPast: false);
        }

        var compacted = SqliteSchema.ReadCompacted(session, tx);
        if (afterRevision < compacted)
        {
            tx.Commit();
            return new HistoryBatch(events, compacted, Partial: false, CompactedPast: true);
        }

        var command = session.Command("""
            SELECT kind, key, value, create_rev, rev, version, lease FROM history
            WHERE rev > $after AND key >= $from AND key < $to ORDER BY rev, seq LIMIT 1000
            """, tx);
        command.Parameters.AddWithValue("$after", afterRevision);
        AddPrefixRange(command, prefix);
        ReadEvents(command, events);
        if (events.Count < HistoryBatchSize)
        {
            tx.Commit();
            return new HistoryBatch(events, revision, Partial: false, CompactedPast: false);
        }

        // A batch may end inside a revision: drop the partial revision so a resume never splits a transaction,
        // or, when the whole batch is one revision, read all of that revision.
        var lastRevision = events[^1].Revision;
        var cut = events.FindIndex(e => e.Revision == lastRevision);
        if (cut > 0)
        {
            events.RemoveRange(cut, events.Count - cut);
            lastRevision = events[^1].Revision;
        }
        else
        {
            events.Clear();
            command = session.Command("""
                SELECT kind, key, value, create_rev, rev, version, lease FROM history
                WHERE rev = $rev AND key >= $from AND key < $to ORDER BY seq
                """, tx);
            command.Parameters.AddWithValue("$rev", lastRevision);
            AddPrefixRange(command, prefix);
            ReadEvents(command, events);
        }

        tx.Commit();
        return new HistoryBatch(events, lastRevision, Partial: true, CompactedPast: false);
    }

    private static void ReadEvents(SqliteCommand command, List<StoreEvent> events)
    {
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var kind = (StoreEventKind)reader.GetInt32(0);
            var entry = new StoreEntry(reader.GetString(1), reader.IsDBNull(2) ? ReadOnlyMemory<byte>.Empty : (byte[])reader[2], reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6));
            events.Add(new StoreEvent(kind, entry));
        }
    }

    private long ExpireLeases(SqliteSession session, SqliteTransaction tx, long revision)
    {
        var command = session.Command("SELECT id FROM leases WHERE expires_ms <= $now", tx);
        command.Parameters.AddWithValue("$now", NowMs());
        var expired = new List<long>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                expired.Add(reader.GetInt64(0));
            }
        }

        foreach (var leaseId in expired)
        {
            revision = EndLease(session, tx, leaseId, revision);
        }

        if (expired.Count > 0)
        {
            SqliteSchema.WriteRevision(session, tx, revision);
        }

        return revision;
    }

    /// <summary>Deletes a lease and its keys at one new revision (when it had keys). Returns the revision.</summary>
    private static long EndLease(SqliteSession session, SqliteTransaction tx, long leaseId, long revision)
    {
        var select = session.Command("SELECT key FROM kv WHERE lease = $lease ORDER BY key", tx);
        select.Parameters.AddWithValue("$lease", leaseId);
        var keys = new List<string>();
        using (var reader = select.ExecuteReader())
        {
            while (reader.Read())
            {
                keys.Add(reader.GetString(0));
            }
        }

        if (keys.Count > 0)
        {
            revision++;
            for (var i = 0; i < keys.Count; i++)
            {
                DeleteKey(session, tx, keys[i], revision, i);
            }
        }

        var delete = session.Command("DELETE FROM leases WHERE id = $lease", tx);
        delete.Parameters.AddWithValue("$lease", leaseId);
        delete.ExecuteNonQuery();
        return revision;
    }

    private static void PutKey(SqliteSession session, SqliteTransaction tx, StoreOperation operation, long revision, int seq)
    {
        if (operation.LeaseId != 0)
        {
            var lease = session.Command("SELECT 1 FROM leases WHERE id = $id", tx);
            lease.Parameters.AddWithValue("$id", operation.LeaseId);
            if (lease.ExecuteScalar() is null)
            {
                throw new StoreLeaseNotFoundException(operation.LeaseId);
            }
        }

        var value = operation.Value!.Value.ToArray();
        var upsert = session.Command("""
            INSERT INTO kv(key, value, create_rev, mod_rev, version, lease) VALUES ($key, $value, $rev, $rev, 1, $lease)
            ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, version = version + 1, lease = excluded.lease
            RETURNING create_rev, version
            """, tx);
        upsert.Parameters.AddWithValue("$key", operation.Key);
        upsert.Parameters.AddWithValue("$value", value);
        upsert.Parameters.AddWithValue("$rev", revision);
        upsert.Parameters.AddWithValue("$lease", operation.LeaseId);
        long createRevision, version;
        using (var reader = upsert.ExecuteReader())
        {
            reader.Read();
            createRevision = reader.GetInt64(0);
            version = reader.GetInt64(1);
        }

        AppendHistory(session, tx, revision, seq, StoreEventKind.Put, operation.Key, value, createRevision, version, operation.LeaseId);
    }

    private static bool DeleteKey(SqliteSession session, SqliteTransaction tx, string key, long revision, int seq)
    {
        var delete = session.Command("DELETE FROM kv WHERE key = $key", tx);
        delete.Parameters.AddWithValue("$key", key);
        if (delete.ExecuteNonQuery() == 0)
        {
            return false;
        }

        AppendHistory(session, tx, revision, seq, StoreEventKind.Delete, key, null, 0, 0, 0);
        return true;
    }

    private static void AppendHistory(SqliteSession session, SqliteTransaction tx, long revision, int seq, StoreEventKind kind, string key, byte[]? value, long createRevision, long version, long leaseId)
    {
        var command = session.Command("""
            INSERT INTO history(rev, seq, kind, key, value, create_rev, version, lease)
            VALUES ($rev, $seq, $kind, $key, $value, $create, $version, $lease)
            """, tx);
        command.Parameters.AddWithValue("$rev", revision);
        command.Parameters.AddWithValue("$seq", seq);
        command.Parameters.AddWithValue("$kind", (int)kind);
        command.Parameters.AddWithValue("$key", key);
        command.Parameters.AddWithValue("$value", (object?)value ?? DBNull.Value);
        command.Parameters.AddWithValue("$create", createRevision);
        command.Parameters.AddWithValue("$version", version);
        command.Parameters.AddWithValue("$lease", leaseId);
        command.ExecuteNonQuery();
    }

    private static long ReadModRevision(SqliteSession session, SqliteTransaction tx, string key)
    {
        var command = session.Command("SELECT mod_rev FROM kv WHERE key = $key", tx);
        command.Parameters.AddWithValue("$key", key);
        return command.ExecuteScalar() is long modRevision ? modRevision : 0;
    }

    private static StoreEntry ReadEntry(SqliteDataReader reader) =>
        new(reader.GetString(0), (byte[])reader[1], reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5));

    private static void AddPrefixRange(SqliteCommand command, string prefix)
    {
        // Keys are compared as BINARY (UTF-8 byte order); the range end is the prefix with its last char bumped.
        command.Parameters.AddWithValue("$from", prefix);
        command.Parameters.AddWithValue("$to", string.Concat(prefix.AsSpan(0, prefix.Length - 1), ((char)(prefix[^1] + 1)).ToString()));
    }

    /// <summary>Runs <paramref name="action"/> on the writer session; the caller holds <see cref="_writeLock"/>. A
    /// session that failed with the store unavailable is closed, so the next write opens a fresh connection.</summary>
    private T Write<T>(Func<SqliteSession, T> action)
    {
        try
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _writer ??= SqliteSession.Open(_connectionString);
            return action(_writer);
        }
        catch (SqliteException ex) when (IsUnavailable(ex))
        {
            _writer?.Dispose();
            _writer = null;
            throw Unavailable(ex, "written");
        }
    }

    /// <summary>Runs <paramref name="action"/> on a reader session from the pool (or a new one), and puts it back
    /// when the action succeeded; reads run concurrently with each other and with the writer (WAL).</summary>
    private T Read<T>(Func<SqliteSession, T> action)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        SqliteSession? session;
        lock (_idleReaders)
        {
            _idleReaders.TryPop(out session);
        }

        try
        {
            session ??= SqliteSession.Open(_connectionString);
            var result = action(session);
            ReturnReader(session);
            session = null;
            return result;
        }
        catch (SqliteException ex) when (IsUnavailable(ex))
        {
            throw Unavailable(ex, "read");
        }
        finally
        {
            session?.Dispose();
        }
    }

    private void ReturnReader(SqliteSession session)
    {
        lock (_idleReaders)
        {
            if (!_closed && _idleReaders.Count < MaxIdleReaders)
            {
                _idleReaders.Push(session);
                return;
            }
        }

        session.Dispose();
    }

    private void CloseIdleReaders()
    {
        lock (_idleReaders)
        {
            while (_idleReaders.TryPop(out var session))
            {
                session.Dispose();
            }
        }
    }

    // BUSY, LOCKED, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB: the store cannot serve now.
    private static bool IsUnavailable(SqliteException ex) => ex.SqliteErrorCode is 5 or 6 or 10 or 11 or 13 or 14 or 26;

    private StoreUnavailableException Unavailable(SqliteException ex, string verb) =>
        new($"The SQLite store '{Path}' cannot be {verb}: {ex.Message}", ex);

    private void SweepLeasesInBackground()
    {
        if (_disposed.IsCancellationRequested || !_writeLock.Wait(0))
        {
            return; // a commit is running and sweeps as part of it
        }

        var swept = false;
        try
        {
            Write(session =>
            {
                using var tx = session.Begin(deferred: false);
                var before = SqliteSchema.ReadRevision(session, tx);
                swept = ExpireLeases(session, tx, before) != before;
                tx.Commit();
                return 0;
            });
        }
        catch (Exception ex) when (ex is StoreUnavailableException or ObjectDisposedException or SqliteException)
        {
            // The next sweep or commit tries again.
        }
        finally
        {
            _writeLock.Release();
        }

        if (swept)
        {
            Signal();
        }
    }

    private void Signal()
    {
        _log.Changed();
        Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static long NewLeaseId()
    {
        // Random 63-bit ids, like etcd's, so a lease id from a previous run never aliases a new one.
        Span<byte> bytes = stackalloc byte[8];
        System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
        return (long)(BitConverter.ToUInt64(bytes) >> 1) | 1;
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
