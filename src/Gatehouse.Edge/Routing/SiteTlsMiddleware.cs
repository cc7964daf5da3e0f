using System.Text;
using Gatehouse.Edge.Tls;
using Microsoft.AspNetCore.Http;

namespace Gatehouse.Edge.Routing;

/// <summary>
/// Per-request side of a site's TLS policy on the HTTPS listener, after the misdirected-request check and before
/// YARP: removes every client-sent copy of the identity headers (on every site), passes a verified client
/// certificate's identity to the backend, answers 403 where an optional site needs a certificate the connection did
/// not present, and adds the site's HSTS header to every response (error pages included) as it starts.
/// </summary>
public static class SiteTlsMiddleware
{
    private static readonly byte[] CertificateNeededBody = Encoding.UTF8.GetBytes(
        "<!doctype html><title>403</title><h1>403 Forbidden: this page needs a client certificate, and this connection presented none.</h1>\n");

    public static Task ApplyAsync(HttpContext context, RequestDelegate next, SiteTlsPolicies policies)
    {
        var headers = context.Request.Headers;
        var names = ClientIdentity.HeaderNames;
        for (var i = 0; i < names.Length; i++)
        {
            headers.Remove(names[i]);
        }

        // The misdirected-request check ran before: the connection's site is the request's.
        if (context.Features.Get<ServedCertificateFeature>() is not { } served || !policies.TryGet(served.Certificate.Id, out var policy))
        {
            return next(context);
        }

        if (policy.Hsts.Enabled)
        {
            context.Response.OnStarting(policy.ApplyHsts, context);
        }

        if (policy.ClientAuth is { } clientAuth)
        {
            // A certificate on the connection was verified in its handshake (the site asked for it, so it has a policy).
            if (context.Connection.ClientCertificate is { } certificate)
            {
                ClientIdentity.Of(certificate).AddTo(headers);
            }
            else if (clientAuth.RequiresCertificate(context.Request.Path))
            {
                return RefuseAsync(context);
            }
        }

        return next(context);
    }

    private static async Task RefuseAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        context.Response.ContentType = "text/html; charset=utf-8";
        await context.Response.Body.WriteAsync(CertificateNeededBody, context.RequestAborted);
    }
}
