using Gatehouse.Acme;
using System.Text.Json;
using Gatehouse.Certificates;
using Gatehouse.Edge.Tls;
using Gatehouse.Sites;
using Gatehouse.Storage;

namespace Gatehouse.Admin;

/// <summary>
/// The admin REST API (its own listener). Every route but <c>/healthz</c> and <c>/readyz</c> needs the bearer
/// token; a request without it gets 401 and changes nothing. Errors are RFC 9457 problem documents.
/// </summary>
internal static class AdminApi
{
    private const string ProblemBase = "urn:gatehouse:problem:";

    public static void Map(IEndpointRouteBuilder endpoints, AdminContext admin)
    {
        endpoints.MapGet("/healthz", () => Results.Text("ok\n"));
        endpoints.MapGet("/readyz", () => admin.IsReady() ? Results.Text("ready\n") : Results.Text("starting\n", statusCode: StatusCodes.Status503ServiceUnavailable));

        endpoints.MapGet("/v1/sites", async (CancellationToken ct) =>
        {
            var sites = await admin.Sites.ListAsync(ct);
            return Results.Json(sites.Select(SiteView.From).ToList(), AdminJson.Default.ListSiteView);
        });

        endpoints.MapPost("/v1/sites", async (HttpRequest request, CancellationToken ct) =>
        {
            AddSiteRequest? body;
            try
            {
                body = await JsonSerializer.DeserializeAsync(request.Body, AdminJson.Default.AddSiteRequest, ct);
            }
            catch (JsonException ex)
            {
                return ProblemResult(StatusCodes.Status400BadRequest, "invalid-body", "The request body is not valid JSON for a site.", ex.Message);
            }

            if (body is null)
            {
                return ProblemResult(StatusCodes.Status400BadRequest, "invalid-body", "The request body is empty.", "Send {\"hosts\": [...], \"backends\": [...]}.");
            }

            var errors = new List<ValidationError>();
            var sites = SiteValidator.Validate(
                [new SiteValidator.Draft("site", body.Hosts ?? [], body.Backends ?? [], body.Issuers ?? [], body.KeyType, body.Profile, body.Mode, body.ProxyProtocol) { ClientAuth = body.ClientAuth?.ToDraft(), Hsts = body.Hsts?.ToDraft(), BackendTls = body.BackendTls?.ToDraft(), HealthCheck = body.HealthCheck?.ToDraft() }],
                SiteSource.Api,
                admin.IssuerNames,
                errors,
                admin.Cipher);
            if (errors.Count > 0)
            {
                return ProblemResult(StatusCodes.Status400BadRequest, "invalid-site", "The site is not valid.", null, errors);
            }

            var site = sites[0];
            if (await admin.Sites.ExistsAsync(site.Id, ct))
            {
                return ProblemResult(StatusCodes.Status409Conflict, "site-exists", "A site with that id exists.", $"Site '{site.Id}' exists; remove it first to define it anew.");
            }

            var conflicts = await admin.Sites.PutAsync(site, "site", ct);
            if (conflicts.Count > 0)
            {
                return ProblemResult(StatusCodes.Status409Conflict, "host-claimed", "The site conflicts with an existing one.", null, conflicts);
            }

            return Results.Json(SiteView.From(site), AdminJson.Default.SiteView, statusCode: StatusCodes.Status201Created);
        });

        endpoints.MapDelete("/v1/sites/{host}", async (string host, CancellationToken ct) =>
        {
            if (!HostName.TryNormalize(host, out var normalized, out var error))
            {
                return ProblemResult(StatusCodes.Status400BadRequest, "invalid-host", "The host name is not valid.", error);
            }

            try
            {
                var removed = await admin.Sites.RemoveByHostAsync(normalized, SiteSource.Api, ct);
                return removed is null
                    ? ProblemResult(StatusCodes.Status404NotFound, "no-such-site", "No site has that host.", $"No site serves '{normalized}'.")
                    : Results.NoContent();
            }
            catch (InvalidOperationException ex)
            {
                return ProblemResult(StatusCodes.Status409Conflict, "defined-in-config", "The site is defined in the config file.", ex.Message);
            }
        });

        endpoints.MapGet("/v1/certificates", async (CancellationToken ct) =>
        {
            var range = await admin.Store.ListAsync(StoreKeys.CertificatesPrefix, ct);
            var views = new List<CertificateView>();
            foreach (var entry in range.Entries)
            {
                var record = CoreJson.Deserialize<CertificateRecord>(entry);
                if (!record.IsInternal)
                {
                    var served = admin.Cache.TryMatch(record.Names.Count > 0 ? record.Names[0] : "", out var current) && current.Serial == record.Serial && current.Failure is null;
                    views.Add(CertificateView.From(record, served));
                }
            }

            return Results.Json(views, AdminJson.Default.ListCertificateView);
        });

        endpoints.MapPost("/v1/certificates/{host}/renew", async (string host, CancellationToken ct) =>
        {
            for (var attempt = 0; attempt < 5; attempt++)
            {
                if (await CertificateActions.FindAsync(admin.Store, host.ToLowerInvariant(), ct) is not var (entry, record))
                {
                    return ProblemResult(StatusCodes.Status404NotFound, "no-such-certificate", "No certificate covers that host.", $"No certificate covers '{host}'.");
                }

                if (await CertificateActions.RenewNowAsync(admin.Store, entry, record, admin.Time, ct))
                {
                    return Results.Json(new ActionView(record.Id, "renewal requested"), AdminJson.Default.ActionView, statusCode: StatusCodes.Status202Accepted);
                }
            }

            return ProblemResult(StatusCodes.Status409Conflict, "busy", "The certificate kept changing; try again.", null);
        });

        endpoints.MapPost("/v1/certificates/{host}/revoke", async (string host, string? reason, CancellationToken ct) =>
        {
            AcmeRevocationReason? parsed = null;
            if (reason is not null)
            {
                if (!Enum.TryParse<AcmeRevocationReason>(reason, ignoreCase: true, out var value) || int.TryParse(reason, System.Globalization.CultureInfo.InvariantCulture, out _))
                {
                    return ProblemResult(StatusCodes.Status400BadRequest, "invalid-reason", "The revocation reason is not known.",
                        $"'{reason}' is not one of: {string.Join(", ", Enum.GetNames<AcmeRevocationReason>())}.");
                }

                parsed = value;
            }

            if (await CertificateActions.FindAsync(admin.Store, host.ToLowerInvariant(), ct) is not var (entry, record))
            {
                return ProblemResult(StatusCodes.Status404NotFound, "no-such-certificate", "No certificate covers that host.", $"No certificate covers '{host}'.");
            }

            try
            {
                await CertificateActions.RevokeAsync(admin.Store, entry, record, admin.AcmeIssuers, parsed, admin.Time, ct);
                return Results.Json(new ActionView(record.Id, $"serial {record.Serial} revoked; a new certificate is being issued"), AdminJson.Default.ActionView);
            }
            catch (InvalidOperationException ex)
            {
                return ProblemResult(StatusCodes.Status409Conflict, "cannot-revoke", "The certificate cannot be revoked.", ex.Message);
            }
            catch (IssuanceException ex)
            {
                return ProblemResult(StatusCodes.Status502BadGateway, "ca-refused", "The CA refused the revocation.", ex.Message);
            }
        });

        endpoints.MapGet("/v1/issuers", async (CancellationToken ct) =>
        {
            var views = new List<AcmeAccountInfo>();
            foreach (var issuer in admin.AcmeIssuers.Values.OrderBy(i => i.Name, StringComparer.Ordinal))
            {
                views.Add(await issuer.GetAccountInfoAsync(askCa: false, ct));
            }

            return Results.Json(views, AdminJson.Default.ListAcmeAccountInfo);
        });

        endpoints.MapGet("/v1/issuers/{name}/account", (string name, CancellationToken ct) =>
            AccountActionAsync(admin, name, issuer => issuer.GetAccountInfoAsync(askCa: true, ct)));

        endpoints.MapPost("/v1/issuers/{name}/account/rollover", (string name, CancellationToken ct) =>
            AccountActionAsync(admin, name, issuer => issuer.RolloverAccountKeyAsync(ct)));

        endpoints.MapPost("/v1/issuers/{name}/account/deactivate", (string name, CancellationToken ct) =>
            AccountActionAsync(admin, name, issuer => issuer.DeactivateAccountAsync(ct)));

        endpoints.MapGet("/v1/ca/root", async (CancellationToken ct) =>
        {
            var root = await admin.LocalCa.GetRootAsync(ct);
            return root is null
                ? ProblemResult(StatusCodes.Status503ServiceUnavailable, "starting", "The local CA is not created yet.", null)
                : Results.Text(root.ExportCertificatePem() + "\n", "application/x-pem-file");
        });
    }

    /// <summary>Runs an account action of an ACME issuer: 404 for an unknown issuer, 409 when the account is not in a
    /// state for it, 502 with the CA's words when the CA refuses.</summary>
    private static async Task<IResult> AccountActionAsync(AdminContext admin, string name, Func<AcmeIssuer, Task<AcmeAccountInfo>> action)
    {
        if (!admin.AcmeIssuers.TryGetValue(name, out var issuer))
        {
            return ProblemResult(StatusCodes.Status404NotFound, "no-such-issuer", "No ACME issuer has that name.",
                $"'{name}' is not an ACME issuer; configured: {(admin.AcmeIssuers.Count == 0 ? "none" : string.Join(", ", admin.AcmeIssuers.Keys.Order(StringComparer.Ordinal)))}.");
        }

        try
        {
            return Results.Json(await action(issuer), AdminJson.Default.AcmeAccountInfo);
        }
        catch (InvalidOperationException ex)
        {
            return ProblemResult(StatusCodes.Status409Conflict, "account-state", "The account cannot do that now.", ex.Message);
        }
        catch (IssuanceException ex)
        {
            return ProblemResult(StatusCodes.Status502BadGateway, "ca-refused", "The CA refused.", ex.Message);
        }
    }

    /// <summary>Requires the bearer token; turns an unavailable store into 503.</summary>
    public static async Task GuardAsync(HttpContext context, RequestDelegate next, AdminToken token)
    {
        var path = context.Request.Path;
        if (!path.Equals("/healthz", StringComparison.Ordinal) && !path.Equals("/readyz", StringComparison.Ordinal)
            && !token.IsAuthorized(context.Request.Headers.Authorization))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"gatehouse-admin\"";
            await ProblemResult(StatusCodes.Status401Unauthorized, "unauthorized", "A valid bearer token is required.", "Send 'Authorization: Bearer <token>' with the token from the data directory's admin.token file.")
                .ExecuteAsync(context);
            return;
        }

        try
        {
            await next(context);
        }
        catch (StoreUnavailableException ex) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            await ProblemResult(StatusCodes.Status503ServiceUnavailable, "store-unavailable", "The store is unavailable; nothing was changed.", ex.Message)
                .ExecuteAsync(context);
        }
    }

    private static IResult ProblemResult(int status, string type, string title, string? detail, IEnumerable<ValidationError>? errors = null) =>
        Results.Json(
            new Problem(ProblemBase + type, title, status, detail, errors?.Select(e => new ProblemError(e.Path, e.Message)).ToList()),
            AdminJson.Default.Problem,
            contentType: "application/problem+json",
            statusCode: status);
}

/// <summary>What the admin API works with.</summary>
internal sealed record AdminContext(IStore Store, SiteRepository Sites, CertificateCache Cache, LocalCertificateAuthority LocalCa, IReadOnlySet<string> IssuerNames, Func<bool> IsReady)
{
    /// <summary>The ACME issuers by name (for revocation).</summary>
    public IReadOnlyDictionary<string, AcmeIssuer> AcmeIssuers { get; init; } = new Dictionary<string, AcmeIssuer>();

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Seals a re-encrypt site's backend client key for its record.</summary>
    public Gatehouse.Keys.EnvelopeCipher? Cipher { get; init; }
}
