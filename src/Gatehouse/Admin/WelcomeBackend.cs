using System.Net;
using System.Text;

namespace Gatehouse.Admin;

/// <summary>
/// The built-in sample backend (config <c>welcome: {port: N}</c>, on 127.0.0.1): a page that shows the request as
/// the backend received it, so a first run works end to end with nothing else installed.
/// </summary>
internal static class WelcomeBackend
{
    public static async Task HandleAsync(HttpContext context)
    {
        var headers = context.Request.Headers;
        var html = new StringBuilder()
            .Append("<!doctype html><meta charset=\"utf-8\"><title>Gatehouse</title>")
            .Append("<h1>Gatehouse is serving this site over HTTPS</h1>")
            .Append("<p>This page comes from Gatehouse's built-in sample backend, reached through the edge.</p><ul>");
        foreach (var name in new[] { "Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host" })
        {
            html.Append("<li><code>").Append(name).Append(": ").Append(WebUtility.HtmlEncode(headers[name].ToString())).Append("</code></li>");
        }

        html.Append("</ul>\n");
        context.Response.ContentType = "text/html; charset=utf-8";
        await context.Response.WriteAsync(html.ToString(), context.RequestAborted);
    }
}
