using Gatehouse.Storage;

namespace Gatehouse.Keys;

/// <summary>
/// Moves every sealed record to the active master key version: each envelope's data key is unwrapped and wrapped
/// again, payloads stay as they are. Each record is written with compare-and-swap on the revision it was read at, so a
/// run can be killed at any moment (every record is then either as it was or rewrapped, both readable), a concurrent
/// writer's newer value is never overwritten, and running again finishes the work (records already on the active
/// version are skipped).
/// </summary>
public sealed class KeyRewrapper(IStore store, EnvelopeCipher cipher, IReadOnlyList<SealedRecordKind> kinds)
{
    /// <summary>Records per transaction: well under the store's operation limit, few enough that a conflict is cheap.</summary>
    private const int BatchSize = 32;
    private const int AttemptsPerRecord = 5;

    public async Task<RewrapResult> RunAsync(IProgress<RewrapProgress>? progress, CancellationToken cancellationToken)
    {
        var work = new List<(SealedRecordKind Kind, StoreEntry Entry)>();
        foreach (var kind in kinds)
        {
            var range = await store.ListAsync(kind.Prefix, cancellationToken);
            work.AddRange(range.Entries.Select(e => (kind, e)));
        }

        var failures = new List<string>();
        int done = 0, rewrapped = 0, current = 0;
        var batch = new List<(SealedRecordKind Kind, StoreEntry Entry, byte[] Value)>(BatchSize);
        progress?.Report(new RewrapProgress(0, work.Count, 0));
        foreach (var (kind, entry) in work)
        {
            cancellationToken.ThrowIfCancellationRequested();
            switch (Prepare(kind, entry, out var value, out var error))
            {
                case Outcome.Current:
                    current++;
                    done++;
                    break;
                case Outcome.Failed:
                    failures.Add(error!);
                    done++;
                    break;
                default:
                    batch.Add((kind, entry, value!));
                    break;
            }

            if (batch.Count == BatchSize)
            {
                (var written, var failed) = await CommitAsync(batch, cancellationToken);
                rewrapped += written;
                failures.AddRange(failed);
                done += batch.Count;
                batch.Clear();
                progress?.Report(new RewrapProgress(done, work.Count, rewrapped));
            }
        }

        if (batch.Count > 0)
        {
            (var written, var failed) = await CommitAsync(batch, cancellationToken);
            rewrapped += written;
            failures.AddRange(failed);
            done += batch.Count;
        }

        progress?.Report(new RewrapProgress(done, work.Count, rewrapped));
        return new RewrapResult(work.Count, rewrapped, current, failures);
    }

    /// <summary>Writes a batch in one transaction; when any record changed meanwhile, each is retried on its own.</summary>
    private async Task<(int Written, List<string> Failed)> CommitAsync(List<(SealedRecordKind Kind, StoreEntry Entry, byte[] Value)> batch, CancellationToken cancellationToken)
    {
        var transaction = new StoreTransaction();
        foreach (var (_, entry, value) in batch)
        {
            transaction.If(StoreCondition.Unchanged(entry.Key, entry.ModRevision)).Put(entry.Key, value, entry.LeaseId);
        }

        var failed = new List<string>();
        if ((await store.CommitAsync(transaction, cancellationToken)).Succeeded)
        {
            return (batch.Count, failed);
        }

        var written = 0;
        foreach (var (kind, first, _) in batch)
        {
            var entry = first;
            for (var attempt = 1; ; attempt++)
            {
                var fresh = await store.GetAsync(entry.Key, cancellationToken);
                if (fresh is null)
                {
                    break; // deleted meanwhile: nothing to protect any more
                }

                var outcome = Prepare(kind, fresh, out var value, out var error);
                if (outcome == Outcome.Current)
                {
                    break; // the writer that changed it sealed with the active version
                }

                if (outcome == Outcome.Failed)
                {
                    failed.Add(error!);
                    break;
                }

                if ((await store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(fresh.Key, fresh.ModRevision)).Put(fresh.Key, value!, fresh.LeaseId), cancellationToken)).Succeeded)
                {
                    written++;
                    break;
                }

                if (attempt == AttemptsPerRecord)
                {
                    failed.Add($"{fresh.Key}: it kept changing while being rewrapped; run rewrap again");
                    break;
                }

                entry = fresh;
            }
        }

        return (written, failed);
    }

    private Outcome Prepare(SealedRecordKind kind, StoreEntry entry, out byte[]? value, out string? error)
    {
        value = null;
        error = null;
        try
        {
            if (kind.Envelopes(entry).All(e => cipher.IsCurrent(e)))
            {
                return Outcome.Current;
            }

            value = kind.Rewrite(entry, envelope => cipher.Rewrap(entry.Key, envelope));
            return Outcome.Rewrap;
        }
        catch (Exception ex) when (ex is EnvelopeAuthenticationException or FormatException)
        {
            // Both name the record and never its content.
            error = ex.Message;
            return Outcome.Failed;
        }
    }

    private enum Outcome
    {
        Current,
        Rewrap,
        Failed,
    }
}

/// <summary>How far a rewrap is: records looked at, of all, and how many were rewritten so far.</summary>
public readonly record struct RewrapProgress(int Done, int Total, int Rewrapped);

/// <summary>What a rewrap did.</summary>
/// <param name="Records">Records looked at.</param>
/// <param name="Rewrapped">Records rewritten onto the active version.</param>
/// <param name="AlreadyCurrent">Records that were on the active version already.</param>
/// <param name="Failures">Records that could not be rewrapped, each with the reason (none means done).</param>
public sealed record RewrapResult(int Records, int Rewrapped, int AlreadyCurrent, IReadOnlyList<string> Failures);
