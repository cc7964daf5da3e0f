using System.Formats.Asn1;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Challenges;
using Gatehouse.Edge.Challenges;
using Gatehouse.IntegrationTests.Infrastructure;
using Gatehouse.Keys;
using Gatehouse.Storage;

namespace Gatehouse.IntegrationTests;

/// <summary>The edge answers RFC 8737 TLS-ALPN-01 validations from challenge records in the store.</summary>
public sealed class TlsAlpnChallengeTests : IAsyncLifetime
{
    private Backend _backend = null!;
    private GatehouseInstance _gatehouse = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("alpn");
        _gatehouse = await GatehouseInstance.StartAsync($$"""

              - hosts: [site.alpn.test]
                backends: [{{_backend.Url}}]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gatehouse.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task AcmeTls1Handshake_GetsTheChallengeCertificate_ThenTheConnectionEnds_AndOtherNamesAreRefused()
    {
        var digest = RandomNumberGenerator.GetBytes(32);
        using var challenge = ChallengeCertificate("site.alpn.test", digest);
        await WriteChallengeAsync(challenge, TimeSpan.FromMinutes(5));

        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await TryAcmeHandshakeAsync("site.alpn.test")).Certificate is not null, TimeSpan.FromSeconds(5)));
        var (presented, protocol, closed) = await TryAcmeHandshakeAsync("site.alpn.test");
        Assert.Equal(challenge.Thumbprint, presented!.Thumbprint);
        Assert.Equal(TlsAlpnResponder.AcmeTls1, protocol);
        Assert.True(closed, "the server must end an acme-tls/1 connection after the handshake");

        // No challenge for this name: refused, not answered with another certificate.
        Assert.Null((await TryAcmeHandshakeAsync("other.alpn.test")).Certificate);

        // Ordinary clients of the same name still get the site's certificate over h2/http1.1.
        await using var normal = await _gatehouse.HandshakeAsync("site.alpn.test", SslApplicationProtocol.Http2);
        Assert.NotEqual(challenge.Thumbprint, new X509Certificate2(normal.RemoteCertificate!).Thumbprint);

        // Deleting the record ends the answer.
        await _gatehouse.Server.Store.CommitAsync(new StoreTransaction().Delete(StoreKeys.TlsAlpn01Challenge("site.alpn.test")));
        Assert.True(await GatehouseInstance.EventuallyAsync(async () => (await TryAcmeHandshakeAsync("site.alpn.test")).Certificate is null, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task ExpiredChallenge_IsNotAnswered()
    {
        using var challenge = ChallengeCertificate("site.alpn.test", RandomNumberGenerator.GetBytes(32));
        await WriteChallengeAsync(challenge, TimeSpan.FromSeconds(-1));
        await Task.Delay(1500); // one mirror round

        Assert.Null((await TryAcmeHandshakeAsync("site.alpn.test")).Certificate);
    }

    private async Task WriteChallengeAsync(X509Certificate2 challenge, TimeSpan lifetime)
    {
        var key = StoreKeys.TlsAlpn01Challenge("site.alpn.test");
        var store = _gatehouse.Server.Store;
        using var ring = await _gatehouse.OpenKeyRingAsync(store);
        using var ecdsa = challenge.GetECDsaPrivateKey()!;
        var pkcs8 = ecdsa.ExportPkcs8PrivateKey();
        var record = new TlsAlpnChallengeRecord("site.alpn.test", challenge.ExportCertificatePem(), new EnvelopeCipher(ring).Seal(key, pkcs8), DateTimeOffset.UtcNow + lifetime);
        CryptographicOperations.ZeroMemory(pkcs8);
        await store.CommitAsync(new StoreTransaction().Put(key, CoreJson.Serialize(record)));
    }

    /// <summary>An RFC 8737 §3 challenge certificate: self-signed, SAN = host, critical id-pe-acmeIdentifier.</summary>
    private static X509Certificate2 ChallengeCertificate(string host, byte[] keyAuthorizationDigest)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + host, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build(critical: true));
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteOctetString(keyAuthorizationDigest);
        request.CertificateExtensions.Add(new X509Extension("1.3.6.1.5.5.7.1.31", writer.Encode(), critical: true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(7));
    }

    /// <summary>A validator's handshake: SNI = host, ALPN = acme-tls/1 only. Returns what was presented (null when refused),
    /// the protocol, and whether the server then closed the connection.</summary>
    private async Task<(X509Certificate2? Certificate, SslApplicationProtocol Protocol, bool Closed)> TryAcmeHandshakeAsync(string host)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _gatehouse.HttpsPort);
        await using var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        X509Certificate2? presented = null;
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                ApplicationProtocols = [TlsAlpnResponder.AcmeTls1],
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    // A validator checks the acmeIdentifier extension, not a chain (RFC 8737 §3).
                    presented = certificate is null ? null : new X509Certificate2(certificate);
                    return presented?.Extensions["1.3.6.1.5.5.7.1.31"] is { Critical: true };
                },
            });
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            return (null, default, true);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var closed = await ssl.ReadAsync(new byte[1], timeout.Token) == 0;
        return (presented, ssl.NegotiatedApplicationProtocol, closed);
    }
}
