using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Gatehouse.Acme;
using Gatehouse.Challenges;
using Gatehouse.Keys;
using Gatehouse.Storage;

namespace Gatehouse.Certificates;

/// <summary>
/// HTTP-01 answers in the store (<c>/challenges/http-01/&lt;token&gt;</c>): every edge instance reads them per request
/// on port 80, so the CA may reach any instance of any cluster.
/// </summary>
public sealed class Http01StoreSolver(IStore store) : IAcmeChallengeSolver
{
    public string ChallengeType => AcmeChallenge.Http01;

    public async Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) =>
        await store.CommitAsync(new StoreTransaction().Put(StoreKeys.Http01Challenge(answer.Token), Encoding.ASCII.GetBytes(answer.Http01Body)), cancellationToken);

    public async Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) =>
        await store.CommitAsync(new StoreTransaction().Delete(StoreKeys.Http01Challenge(answer.Token)), cancellationToken);
}

/// <summary>
/// TLS-ALPN-01 answers in the store (<c>/challenges/tls-alpn-01/&lt;host&gt;</c>): the challenge certificate with its
/// key sealed; every edge instance presents it to <c>acme-tls/1</c> handshakes. <paramref name="waitUntilServed"/>
/// lets the composition root hold the CA back until the local edge has picked the record up.
/// </summary>
public sealed class TlsAlpn01StoreSolver(IStore store, EnvelopeCipher cipher, TimeProvider time, Func<string, long, CancellationToken, Task>? waitUntilServed = null)
    : IAcmeChallengeSolver
{
    /// <summary>How long an answer stays presentable (authorizations are validated in seconds; this bounds leftovers).</summary>
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);

    public string ChallengeType => AcmeChallenge.TlsAlpn01;

    public async Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken)
    {
        var host = answer.Identifier.Value.ToLowerInvariant();
        var key = StoreKeys.TlsAlpn01Challenge(host);
        using var certificate = answer.CreateTlsAlpn01Certificate();
        using var privateKey = certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("The TLS-ALPN-01 challenge certificate has no ECDSA key.");
        var pkcs8 = privateKey.ExportPkcs8PrivateKey();
        byte[] sealedKey;
        try
        {
            sealedKey = cipher.Seal(key, pkcs8);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }

        var record = new TlsAlpnChallengeRecord(host, certificate.ExportCertificatePem(), sealedKey, time.GetUtcNow() + Lifetime);
        var result = await store.CommitAsync(new StoreTransaction().Put(key, CoreJson.Serialize(record)), cancellationToken);
        if (waitUntilServed is not null)
        {
            await waitUntilServed(host, result.Revision, cancellationToken);
        }
    }

    public async Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) =>
        await store.CommitAsync(new StoreTransaction().Delete(StoreKeys.TlsAlpn01Challenge(answer.Identifier.Value.ToLowerInvariant())), cancellationToken);
}
