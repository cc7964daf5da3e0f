using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

/// <summary>One POST the fake server accepted: its decoded protected header and payload.</summary>
public sealed record FakeRequest(HttpMethod Method, string Path, JsonElement Header, byte[] Payload, DateTimeOffset Time)
{
    public string? Nonce => Header.TryGetProperty("nonce", out var nonce) ? nonce.GetString() : null;

    public JsonElement PayloadJson => JsonDocument.Parse(Payload).RootElement;
}

/// <summary>
/// A fake ACME server in process (an HttpMessageHandler), for protocol-shape unit tests; not a CA. It serves a
/// directory and nonces, checks what every ACME server checks on a POST (a nonce it issued and nobody used, the
/// <c>url</c> header, the JWS signature against the <c>jwk</c> or the registered account key of <c>kid</c>), registers
/// accounts, and leaves every other resource to <see cref="Respond"/>.
/// </summary>
public sealed class FakeAcmeServer : HttpMessageHandler
{
    public const string Origin = "https://acme.test";

    private readonly ConcurrentDictionary<string, byte> _issuedNonces = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, JsonElement> _accounts = new(StringComparer.Ordinal);
    private int _nonceCounter;
    private int _accountCounter;
    private int _rejectNonces;
    private int _nonceHeads;
    private int _noncesReused;

    public static Uri DirectoryUrl => new(Origin + "/directory");

    public TimeProvider Time { get; init; } = TimeProvider.System;

    public bool OfferRenewalInfo { get; set; }

    public Dictionary<string, string> Profiles { get; } = [];

    /// <summary>Valid nonces to refuse as <c>badNonce</c> before accepting again (int.MaxValue: all).</summary>
    public int RejectNonces
    {
        get => Volatile.Read(ref _rejectNonces);
        set => Volatile.Write(ref _rejectNonces, value);
    }

    /// <summary>Answers an accepted POST (or a GET outside the directory and nonce); null falls through to 404.</summary>
    public Func<FakeRequest, HttpResponseMessage?>? Respond { get; set; }

    public ConcurrentQueue<FakeRequest> Requests { get; } = new();

    /// <summary>Real time every POST takes, so that concurrent requests overlap.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>Every response the server sent: path, status and the Replay-Nonce it carried.</summary>
    public ConcurrentQueue<(string Path, HttpStatusCode Status, string? Nonce)> Responses { get; } = new();

    public int NonceHeads => Volatile.Read(ref _nonceHeads);

    public int NoncesReused => Volatile.Read(ref _noncesReused);

    public static HttpResponseMessage Json(HttpStatusCode status, JsonNode body, Uri? location = null, string? retryAfter = null)
    {
        var response = new HttpResponseMessage(status) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        response.Headers.Location = location;
        if (retryAfter is not null)
        {
            response.Headers.TryAddWithoutValidation("Retry-After", retryAfter);
        }

        return response;
    }

    public static HttpResponseMessage Problem(HttpStatusCode status, string acmeError, string detail, string? retryAfter = null)
    {
        var response = Json(status, new JsonObject { ["type"] = AcmeProblem.AcmeErrorPrefix + acmeError, ["detail"] = detail, ["status"] = (int)status }, retryAfter: retryAfter);
        response.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/problem+json");
        return response;
    }

    /// <summary>An order object as the server would send it.</summary>
    public static JsonObject Order(string status, string? certificate = null) => new()
    {
        ["status"] = status,
        ["identifiers"] = new JsonArray(new JsonObject { ["type"] = "dns", ["value"] = "example.test" }),
        ["authorizations"] = new JsonArray(Origin + "/authz/1"),
        ["finalize"] = Origin + "/order/1/finalize",
        ["certificate"] = certificate,
    };

    /// <summary>Verifies a flattened JWS with <paramref name="jwk"/>; false when the signature does not hold.</summary>
    public static bool Verify(JsonElement jws, JsonElement jwk)
    {
        var input = Encoding.ASCII.GetBytes(jws.GetProperty("protected").GetString() + "." + jws.GetProperty("payload").GetString());
        var signature = Base64Url.DecodeFromChars(jws.GetProperty("signature").GetString());
        var header = JsonDocument.Parse(Base64Url.DecodeFromChars(jws.GetProperty("protected").GetString())).RootElement;
        var alg = header.GetProperty("alg").GetString();
        if (jwk.GetProperty("kty").GetString() == "RSA")
        {
            using var rsa = RSA.Create(new RSAParameters { Modulus = Field(jwk, "n"), Exponent = Field(jwk, "e") });
            return alg == "RS256" && rsa.VerifyData(input, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }

        var (curve, hash, name) = jwk.GetProperty("crv").GetString() switch
        {
            "P-256" => (ECCurve.NamedCurves.nistP256, HashAlgorithmName.SHA256, "ES256"),
            "P-384" => (ECCurve.NamedCurves.nistP384, HashAlgorithmName.SHA384, "ES384"),
            _ => (ECCurve.NamedCurves.nistP521, HashAlgorithmName.SHA512, "ES512"),
        };
        using var ec = ECDsa.Create(new ECParameters { Curve = curve, Q = new ECPoint { X = Field(jwk, "x"), Y = Field(jwk, "y") } });
        return alg == name && ec.VerifyData(input, signature, hash, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    public static JsonElement DecodeHeader(JsonElement jws) =>
        JsonDocument.Parse(Base64Url.DecodeFromChars(jws.GetProperty("protected").GetString())).RootElement;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri!.AbsolutePath;
        var response = await HandleAsync(request, path, cancellationToken);
        var nonce = "n" + Interlocked.Increment(ref _nonceCounter).ToString(System.Globalization.CultureInfo.InvariantCulture) + "_" + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(6));
        _issuedNonces[nonce] = 0;
        response.Headers.TryAddWithoutValidation("Replay-Nonce", nonce);
        response.RequestMessage = request;
        Responses.Enqueue((path, response.StatusCode, nonce));
        return response;
    }

    private async Task<HttpResponseMessage> HandleAsync(HttpRequestMessage request, string path, CancellationToken cancellationToken)
    {
        if (path == "/directory")
        {
            var directory = new JsonObject
            {
                ["newNonce"] = Origin + "/new-nonce",
                ["newAccount"] = Origin + "/new-account",
                ["newOrder"] = Origin + "/new-order",
                ["revokeCert"] = Origin + "/revoke",
                ["keyChange"] = Origin + "/key-change",
                ["meta"] = new JsonObject
                {
                    ["termsOfService"] = Origin + "/terms",
                    ["caaIdentities"] = new JsonArray("acme.test"),
                    ["profiles"] = Profiles.Count == 0 ? null : new JsonObject(Profiles.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
                },
            };
            if (OfferRenewalInfo)
            {
                directory["renewalInfo"] = Origin + "/renewal-info/";
            }

            return Json(HttpStatusCode.OK, directory);
        }

        if (path == "/new-nonce")
        {
            Interlocked.Increment(ref _nonceHeads);
            return new HttpResponseMessage(request.Method == HttpMethod.Head ? HttpStatusCode.OK : HttpStatusCode.NoContent);
        }

        if (request.Method != HttpMethod.Post)
        {
            var get = new FakeRequest(request.Method, path, default, [], Time.GetUtcNow());
            Requests.Enqueue(get);
            return Respond?.Invoke(get) ?? Problem(HttpStatusCode.NotFound, AcmeErrors.Malformed, "no such resource");
        }

        if (request.Content?.Headers.ContentType?.MediaType != "application/jose+json")
        {
            return Problem(HttpStatusCode.UnsupportedMediaType, AcmeErrors.Malformed, "want application/jose+json");
        }

        if (Latency > TimeSpan.Zero)
        {
            await Task.Delay(Latency, cancellationToken);
        }

        var jws = JsonDocument.Parse(await request.Content.ReadAsByteArrayAsync(cancellationToken)).RootElement;
        var header = DecodeHeader(jws);
        if (header.GetProperty("url").GetString() != request.RequestUri!.AbsoluteUri)
        {
            return Problem(HttpStatusCode.Unauthorized, AcmeErrors.Unauthorized, "url header does not match");
        }

        var nonce = header.TryGetProperty("nonce", out var n) ? n.GetString() ?? "" : "";
        if (!_issuedNonces.TryRemove(nonce, out _))
        {
            Interlocked.Increment(ref _noncesReused);
            return Problem(HttpStatusCode.BadRequest, AcmeErrors.BadNonce, "nonce unknown or used");
        }

        if (RejectNonces > 0)
        {
            if (RejectNonces != int.MaxValue)
            {
                Interlocked.Decrement(ref _rejectNonces);
            }

            return Problem(HttpStatusCode.BadRequest, AcmeErrors.BadNonce, "rejected for the test");
        }

        JsonElement key;
        if (header.TryGetProperty("jwk", out var jwk))
        {
            key = jwk;
        }
        else if (!_accounts.TryGetValue(header.GetProperty("kid").GetString()!, out key))
        {
            return Problem(HttpStatusCode.BadRequest, AcmeErrors.AccountDoesNotExist, "no such account");
        }

        if (!Verify(jws, key))
        {
            return Problem(HttpStatusCode.BadRequest, AcmeErrors.Malformed, "JWS signature does not verify");
        }

        var payload = Base64Url.DecodeFromChars(jws.GetProperty("payload").GetString());
        var accepted = new FakeRequest(request.Method, path, header, payload, Time.GetUtcNow());
        Requests.Enqueue(accepted);
        if (Respond?.Invoke(accepted) is { } scripted)
        {
            return scripted;
        }

        return path == "/new-account" ? NewAccount(key, accepted) : Problem(HttpStatusCode.NotFound, AcmeErrors.Malformed, "no such resource");
    }

    /// <summary>Forgets every account (as a CA that lost its database).</summary>
    public void ForgetAccounts() => _accounts.Clear();

    /// <summary>Binds the account at <paramref name="accountUrl"/> to another key (after a key change).</summary>
    public void SetAccountKey(string accountUrl, JsonElement jwk) => _accounts[accountUrl] = jwk.Clone();

    private HttpResponseMessage NewAccount(JsonElement jwk, FakeRequest request)
    {
        var thumbprint = jwk.GetRawText();
        var existing = _accounts.FirstOrDefault(a => a.Value.GetRawText() == thumbprint).Key;
        var onlyExisting = request.PayloadJson.TryGetProperty("onlyReturnExisting", out var only) && only.GetBoolean();
        if (existing is null && onlyExisting)
        {
            return Problem(HttpStatusCode.BadRequest, AcmeErrors.AccountDoesNotExist, "no account for this key");
        }

        var url = existing ?? $"{Origin}/account/{Interlocked.Increment(ref _accountCounter)}";
        _accounts[url] = jwk.Clone();
        return Json(existing is null ? HttpStatusCode.Created : HttpStatusCode.OK, new JsonObject { ["status"] = "valid" }, new Uri(url));
    }

    private static byte[] Field(JsonElement jwk, string name) => Base64Url.DecodeFromChars(jwk.GetProperty(name).GetString());
}

/// <summary>
/// A virtual clock whose short timers fire at once: every wait of up to <see cref="MaxJump"/> the code under test
/// asks for is recorded and jumps the clock forward by that much. Longer timers (timeouts) run in real time.
/// </summary>
public sealed class JumpingTimeProvider : TimeProvider
{
    private readonly Lock _lock = new();
    private DateTimeOffset _now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    public ConcurrentQueue<TimeSpan> Waits { get; } = new();

    public override DateTimeOffset GetUtcNow()
    {
        lock (_lock)
        {
            return _now;
        }
    }

    public static TimeSpan MaxJump => TimeSpan.FromSeconds(10);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        if (dueTime > MaxJump)
        {
            return System.CreateTimer(callback, state, dueTime, period);
        }

        Waits.Enqueue(dueTime);
        lock (_lock)
        {
            _now += dueTime;
        }

        return System.CreateTimer(callback, state, TimeSpan.Zero, Timeout.InfiniteTimeSpan);
    }
}
