using System.Text;
using Gatehouse.Storage;

namespace Gatehouse.Sites;

/// <summary>
/// Reads and writes sites in the store. A host belongs to one site at most: every write claims its hosts under
/// <see cref="StoreKeys.HostClaimsPrefix"/> in the same transaction, conditional on nobody else holding them, so
/// two instances (or the config file and the API) cannot give one host to two sites.
/// </summary>
public sealed class SiteRepository(IStore store)
{
    private const int MaxAttempts = 5;

    /// <summary>The most hosts one site may have (one certificate covers them; public CAs allow 100 names).</summary>
    public const int MaxHostsPerSite = 100;

    /// <summary>Adds a brand-new <paramref name="site"/> to <paramref name="transaction"/>: the site and a claim on each
    /// of its hosts, every key conditional on being absent. For bulk seeding of an empty store (tests, benches), where
    /// <see cref="PutAsync"/>'s reads per site are not needed.</summary>
    internal static StoreTransaction AddNew(StoreTransaction transaction, SiteDefinition site)
    {
        var siteKey = StoreKeys.Site(site.Id);
        transaction.If(StoreCondition.Absent(siteKey)).Put(siteKey, CoreJson.Serialize(site));
        foreach (var host in site.Hosts)
        {
            var claimKey = StoreKeys.HostClaim(host);
            transaction.If(StoreCondition.Absent(claimKey)).Put(claimKey, Encoding.UTF8.GetBytes(site.Id));
        }

        return transaction;
    }

    /// <summary>Every site, in id order.</summary>
    public async Task<IReadOnlyList<SiteDefinition>> ListAsync(CancellationToken cancellationToken)
    {
        var range = await store.ListAsync(StoreKeys.SitesPrefix, cancellationToken);
        return [.. range.Entries.Select(CoreJson.Deserialize<SiteDefinition>)];
    }

    /// <summary>Creates <paramref name="site"/>, or replaces the site with its id when that one has the same
    /// source. Returns the errors that stopped it (none on success); nothing is written then.</summary>
    public async Task<IReadOnlyList<ValidationError>> PutAsync(SiteDefinition site, string path, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var errors = new List<ValidationError>();
            var siteKey = StoreKeys.Site(site.Id);
            var existingEntry = await store.GetAsync(siteKey, cancellationToken);
            var existing = existingEntry is null ? null : CoreJson.Deserialize<SiteDefinition>(existingEntry);
            if (existing is not null && existing.Source != site.Source)
            {
                errors.Add(new(path, $"a site with id '{site.Id}' already exists ({Describe(existing.Source)})"));
                return errors;
            }

            if (existing is not null && existing.SameAs(site))
            {
                return errors;
            }

            var transaction = new StoreTransaction()
                .If(existingEntry is null ? StoreCondition.Absent(siteKey) : StoreCondition.Unchanged(siteKey, existingEntry.ModRevision))
                .Put(siteKey, CoreJson.Serialize(site));
            for (var i = 0; i < site.Hosts.Count; i++)
            {
                var host = site.Hosts[i];
                var claimKey = StoreKeys.HostClaim(host);
                var claim = await store.GetAsync(claimKey, cancellationToken);
                if (claim is null)
                {
                    transaction.If(StoreCondition.Absent(claimKey)).Put(claimKey, Encoding.UTF8.GetBytes(site.Id));
                }
                else if (Encoding.UTF8.GetString(claim.Value.Span) is var owner && owner != site.Id)
                {
                    var ownerSite = await store.GetAsync(StoreKeys.Site(owner), cancellationToken);
                    var how = ownerSite is null ? "" : $" ({Describe(CoreJson.Deserialize<SiteDefinition>(ownerSite).Source)})";
                    errors.Add(new($"{path}:hosts:{i}", $"'{host}' is already claimed by site '{owner}'{how}"));
                }
                else
                {
                    transaction.If(StoreCondition.Unchanged(claimKey, claim.ModRevision));
                }
            }

            if (errors.Count > 0)
            {
                return errors;
            }

            if ((await store.CommitAsync(transaction, cancellationToken)).Succeeded)
            {
                // Hosts the site gave up are released afterwards (one transaction holds at most 128 operations;
                // a site and its claims fit, claims and releases together may not).
                var released = existing?.Hosts.Except(site.Hosts, StringComparer.Ordinal).ToList() ?? [];
                if (released.Count > 0)
                {
                    var release = new StoreTransaction();
                    foreach (var host in released)
                    {
                        release.Delete(StoreKeys.HostClaim(host));
                    }

                    await store.CommitAsync(release, cancellationToken);
                }

                return errors;
            }

            if (attempt == MaxAttempts)
            {
                throw new StoreUnavailableException($"Writing site '{site.Id}' kept conflicting with concurrent writes; try again.");
            }
        }
    }

    /// <summary>Removes the site that has <paramref name="host"/>. Returns the removed site, or null when no site has
    /// it. <paramref name="onlyFrom"/> refuses sites of another source (an API caller cannot remove config sites).</summary>
    /// <exception cref="InvalidOperationException">The site comes from another source than <paramref name="onlyFrom"/>.</exception>
    public async Task<SiteDefinition?> RemoveByHostAsync(string host, SiteSource? onlyFrom, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var claim = await store.GetAsync(StoreKeys.HostClaim(host), cancellationToken);
            var siteId = claim is null ? host : Encoding.UTF8.GetString(claim.Value.Span);
            var entry = await store.GetAsync(StoreKeys.Site(siteId), cancellationToken);
            if (entry is null)
            {
                return null;
            }

            var site = CoreJson.Deserialize<SiteDefinition>(entry);
            if (onlyFrom is { } source && site.Source != source)
            {
                throw new InvalidOperationException($"Site '{site.Id}' is defined {Describe(site.Source)}; remove it there.");
            }

            if (await RemoveAsync(site, entry.ModRevision, cancellationToken))
            {
                return site;
            }

            if (attempt == MaxAttempts)
            {
                throw new StoreUnavailableException($"Removing site '{site.Id}' kept conflicting with concurrent writes; try again.");
            }
        }
    }

    /// <summary>
    /// Makes the store's config-file sites equal <paramref name="desired"/>: adds and updates those, removes config
    /// sites that are gone. Sites added through the API are left alone; a config site that conflicts with one is
    /// skipped and reported in the returned errors.
    /// </summary>
    public async Task<IReadOnlyList<ValidationError>> SyncConfigSitesAsync(IReadOnlyList<(SiteDefinition Site, string Path)> desired, CancellationToken cancellationToken)
    {
        var errors = new List<ValidationError>();
        var wanted = desired.Select(d => d.Site.Id).ToHashSet(StringComparer.Ordinal);
        var range = await store.ListAsync(StoreKeys.SitesPrefix, cancellationToken);
        foreach (var entry in range.Entries)
        {
            var site = CoreJson.Deserialize<SiteDefinition>(entry);
            if (site.Source == SiteSource.Config && !wanted.Contains(site.Id))
            {
                await RemoveAsync(site, entry.ModRevision, cancellationToken);
            }
        }

        // Release hosts that config sites give up before other config sites claim them (hosts may move between sites).
        foreach (var (site, path) in desired)
        {
            if (await store.GetAsync(StoreKeys.Site(site.Id), cancellationToken) is { } entry
                && CoreJson.Deserialize<SiteDefinition>(entry) is { Source: SiteSource.Config } old
                && old.Hosts.Except(site.Hosts, StringComparer.Ordinal).Any())
            {
                var kept = old with { Hosts = [.. old.Hosts.Intersect(site.Hosts, StringComparer.Ordinal)] };
                if (kept.Hosts.Count == 0)
                {
                    await RemoveAsync(old, entry.ModRevision, cancellationToken);
                }
                else
                {
                    errors.AddRange(await PutAsync(kept, path, cancellationToken));
                }
            }
        }

        foreach (var (site, path) in desired)
        {
            errors.AddRange(await PutAsync(site, path, cancellationToken));
        }

        return errors;
    }

    private async Task<bool> RemoveAsync(SiteDefinition site, long modRevision, CancellationToken cancellationToken)
    {
        var transaction = new StoreTransaction()
            .If(StoreCondition.Unchanged(StoreKeys.Site(site.Id), modRevision))
            .Delete(StoreKeys.Site(site.Id));
        foreach (var host in site.Hosts)
        {
            transaction.Delete(StoreKeys.HostClaim(host)); // at most 1 + 100 operations
        }

        return (await store.CommitAsync(transaction, cancellationToken)).Succeeded;
    }

    /// <summary>Whether a site with this id exists.</summary>
    public async Task<bool> ExistsAsync(string siteId, CancellationToken cancellationToken) =>
        await store.GetAsync(StoreKeys.Site(siteId), cancellationToken) is not null;

    private static string Describe(SiteSource source) => source == SiteSource.Config ? "in the config file" : "through the admin API";
}
