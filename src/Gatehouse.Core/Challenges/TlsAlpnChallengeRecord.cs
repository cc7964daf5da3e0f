namespace Gatehouse.Challenges;

/// <summary>
/// An RFC 8737 TLS-ALPN-01 challenge answer as the store holds it (<c>/gatehouse/v1/challenges/tls-alpn-01/&lt;host&gt;</c>):
/// the self-signed challenge certificate for one host and its private key, sealed like every other key. Whoever
/// orders writes it; every edge instance presents it to <c>acme-tls/1</c> handshakes for that host until it is deleted.
/// </summary>
/// <param name="Host">The identifier being validated (a DNS name, lower case).</param>
/// <param name="CertificatePem">The challenge certificate (SAN = <paramref name="Host"/>, critical acmeIdentifier extension).</param>
/// <param name="SealedKey">Its PKCS#8 private key, sealed for this record's store key.</param>
/// <param name="Expires">When the answer is no longer needed (authorizations expire); the edge ignores it after.</param>
public sealed record TlsAlpnChallengeRecord(string Host, string CertificatePem, byte[] SealedKey, DateTimeOffset Expires);
