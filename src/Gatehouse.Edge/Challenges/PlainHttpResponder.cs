using Gatehouse.Storage;
using Microsoft.AspNetCore.Http;

namespace Gatehouse.Edge.Challenges;

/// <summary>
/// The plain-HTTP listener: answers ACME HTTP-01 challenges (RFC 8555 §8.3) from the store, so every instance
/// answers every challenge, and redirects everything else to HTTPS with 308 (method and body kept).
/// </summary>
public sealed class PlainHttpResponder(IStore store, int httpsPort)
{
    private const string ChallengePath = "/.well-known/acme-challenge/";

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        if (path.StartsWith(ChallengePath, StringComparison.Ordinal))
        {
            await AnswerChallengeAsync(context, path[ChallengePath.Length..]);
            return;
        }

        var host = request.Host.Host;
        if (string.IsNullOrEmpty(host) || Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        // HostString.Host keeps an IPv6 literal's brackets, so the authority is the host as given plus the port.
        var authority = httpsPort == 443 ? host : $"{host}:{httpsPort}";

        context.Response.StatusCode = StatusCodes.Status308PermanentRedirect;
        context.Response.Headers.Location = $"https://{authority}{request.PathBase}{request.Path}{request.QueryString}";
    }

    private async Task AnswerChallengeAsync(HttpContext context, string token)
    {
        // RFC 8555 §8.1: tokens are base64url; anything else cannot be one of ours.
        if (token.Length is 0 or > 256 || !IsBase64Url(token))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        StoreEntry? entry;
        try
        {
            entry = await store.GetAsync(StoreKeys.Http01Challenge(token), context.RequestAborted);
        }
        catch (StoreUnavailableException)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }

        if (entry is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        context.Response.ContentType = "application/octet-stream";
        await context.Response.Body.WriteAsync(entry.Value, context.RequestAborted);
    }

    private static bool IsBase64Url(string token)
    {
        foreach (var c in token)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_'))
            {
                return false;
            }
        }

        return true;
    }
}
