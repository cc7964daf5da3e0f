using System.CommandLine;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Gatehouse.Admin;

namespace Gatehouse.Cli;

/// <summary>Options every admin command takes, with their environment variables.</summary>
internal sealed class AdminConnectionOptions
{
    public Option<string> Admin { get; } = new("--admin")
    {
        Description = "Admin API base URL [env: GATEHOUSE_ADMIN_URL]",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("GATEHOUSE_ADMIN_URL") ?? "https://127.0.0.1:9443",
    };

    public Option<DirectoryInfo> Data { get; } = new("--data")
    {
        Description = "The server's data directory, where admin.token and local-ca-root.pem are [env: GATEHOUSE_DATA]",
        DefaultValueFactory = _ => new DirectoryInfo(Environment.GetEnvironmentVariable("GATEHOUSE_DATA") ?? "data"),
    };

    public Option<bool> Json { get; } = new("--json") { Description = "Print JSON for scripts instead of a table." };

    public void AddTo(Command command)
    {
        command.Options.Add(Admin);
        command.Options.Add(Data);
        command.Options.Add(Json);
    }

    /// <summary>A client for the admin API; the token comes from GATEHOUSE_ADMIN_TOKEN or the data directory.</summary>
    public AdminClient CreateClient(ParseResult parseResult)
    {
        var data = parseResult.GetValue(Data)!.FullName;
        var token = Environment.GetEnvironmentVariable("GATEHOUSE_ADMIN_TOKEN");
        var tokenFile = Path.Combine(data, "admin.token");
        if (string.IsNullOrEmpty(token))
        {
            try
            {
                token = File.ReadAllText(tokenFile).Trim();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CliException($"cannot read the admin token '{tokenFile}' ({ex.Message}); pass --data DIR or set GATEHOUSE_ADMIN_TOKEN");
            }
        }

        var caFile = Path.Combine(data, "local-ca-root.pem");
        X509Certificate2? root = null;
        if (File.Exists(caFile))
        {
            root = X509Certificate2.CreateFromPem(File.ReadAllText(caFile));
        }

        if (!Uri.TryCreate(parseResult.GetValue(Admin), UriKind.Absolute, out var admin) || admin.Scheme != Uri.UriSchemeHttps)
        {
            throw new CliException($"--admin must be an https:// URL (the token is never sent in the clear): '{parseResult.GetValue(Admin)}'");
        }

        return new AdminClient(admin, token, root);
    }
}

/// <summary>A failure the CLI reports in one line (exit code 1).</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>Talks to the admin API over HTTPS, trusting the local CA's root (the admin listener's issuer).</summary>
internal sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;

    public AdminClient(Uri baseAddress, string token, X509Certificate2? localRoot)
    {
        var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) };
        if (localRoot is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                if (errors == SslPolicyErrors.None)
                {
                    return true;
                }

                if (certificate is null || chain is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
                {
                    return false;
                }

                // Same chain (with the intermediates the server sent), but anchored at the local CA's root only.
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(localRoot);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
        }

        _http = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>Sends a request; returns the body on success, throws <see cref="CliException"/> with the API's
    /// problem details otherwise.</summary>
    public async Task<string> SendAsync(HttpMethod method, string path, string? jsonBody, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        if (jsonBody is not null)
        {
            request.Content = new StringContent(jsonBody, System.Text.Encoding.UTF8, "application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new CliException($"cannot reach the admin API at {_http.BaseAddress}: {ex.Message}{(ex.InnerException is { } inner ? " " + inner.Message : "")}");
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.IsSuccessStatusCode)
            {
                return body;
            }

            throw new CliException(DescribeProblem((int)response.StatusCode, body));
        }
    }

    private static string DescribeProblem(int status, string body)
    {
        try
        {
            var problem = JsonSerializer.Deserialize(body, AdminJson.Default.Problem);
            if (problem is not null)
            {
                var lines = new List<string> { $"{problem.Title}{(problem.Detail is null ? "" : " " + problem.Detail)} (HTTP {status})" };
                lines.AddRange(problem.Errors?.Select(e => $"  {e.Path}: {e.Message}") ?? []);
                return string.Join(Environment.NewLine, lines);
            }
        }
        catch (JsonException)
        {
        }

        return $"the admin API answered HTTP {status}";
    }

    public void Dispose() => _http.Dispose();
}
