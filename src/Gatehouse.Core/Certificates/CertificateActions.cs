using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;
using Gatehouse.Storage;

namespace Gatehouse.Certificates;

/// <summary>What operators ask of one certificate: renew it now, or revoke it (and get a new one).</summary>
public static class CertificateActions
{
    /// <summary>Finds the certificate record that covers <paramref name="host"/> (its id, or one of its names).</summary>
    public static async Task<(StoreEntry Entry, CertificateRecord Record)?> FindAsync(IStore store, string host, CancellationToken cancellationToken)
    {
        var exact = await store.GetAsync(StoreKeys.Certificate(host), cancellationToken);
        if (exact is not null)
        {
            return (exact, CoreJson.Deserialize<CertificateRecord>(exact));
        }

        foreach (var entry in (await store.ListAsync(StoreKeys.CertificatesPrefix, cancellationToken)).Entries)
        {
            var record = CoreJson.Deserialize<CertificateRecord>(entry);
            if (!record.IsInternal && record.Names.Contains(host, StringComparer.OrdinalIgnoreCase))
            {
                return (entry, record);
            }
        }

        return null;
    }

    /// <summary>Makes the certificate due now: the manager renews it (with a fresh key) at once, whatever failed before.</summary>
    /// <returns>False when the record changed meanwhile (the caller may try again).</returns>
    public static async Task<bool> RenewNowAsync(IStore store, StoreEntry entry, CertificateRecord record, TimeProvider time, CancellationToken cancellationToken)
    {
        var due = record with { RenewAfter = time.GetUtcNow(), RetryAfter = null, ConsecutiveFailures = 0 };
        var result = await store.CommitAsync(new StoreTransaction().If(StoreCondition.Unchanged(entry.Key, entry.ModRevision)).Put(entry.Key, CoreJson.Serialize(due)), cancellationToken);
        return result.Succeeded;
    }

    /// <summary>Revokes the served certificate at its ACME CA with the account key, then makes it due for renewal.</summary>
    /// <exception cref="InvalidOperationException">The certificate has no chain, or its issuer cannot revoke (the local CA).</exception>
    /// <exception cref="IssuanceException">The CA refused; the message has its words.</exception>
    public static async Task RevokeAsync(IStore store, StoreEntry entry, CertificateRecord record, IReadOnlyDictionary<string, AcmeIssuer> issuers, AcmeRevocationReason? reason, TimeProvider time, CancellationToken cancellationToken)
    {
        if (record.ChainPem is null)
        {
            throw new InvalidOperationException($"Certificate '{record.Id}' has not been issued; there is nothing to revoke.");
        }

        if (record.Issuer is null || !issuers.TryGetValue(record.Issuer, out var issuer))
        {
            throw new InvalidOperationException($"Certificate '{record.Id}' was issued by '{record.Issuer}', which cannot revoke (only ACME issuers can; the local CA publishes no revocation).");
        }

        using var leaf = X509Certificate2.CreateFromPem(record.ChainPem);
        await issuer.RevokeAsync(leaf, reason, cancellationToken);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var fresh = await store.GetAsync(entry.Key, cancellationToken);
            if (fresh is null || await RenewNowAsync(store, fresh, CoreJson.Deserialize<CertificateRecord>(fresh), time, cancellationToken))
            {
                return;
            }
        }
    }
}
