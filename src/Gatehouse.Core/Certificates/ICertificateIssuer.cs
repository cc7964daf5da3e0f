namespace Gatehouse.Certificates;

/// <summary>
/// An issuer: given a CSR and the names it must cover, returns a chain. Implementations: the built-in local CA and
/// (later) ACME CAs. Safe to call concurrently for different certificates.
/// </summary>
public interface ICertificateIssuer
{
    /// <summary>The name sites use to ask for this issuer.</summary>
    string Name { get; }

    /// <summary>Issues a certificate for <paramref name="request"/>.</summary>
    /// <exception cref="IssuanceException">The issuer refused or failed; the exception says whether retrying helps.</exception>
    Task<IssuedChain> IssueAsync(IssuanceRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// Implemented by issuers whose CA suggests when to renew (ACME Renewal Information, RFC 9773). The manager asks
/// after each issuance and again when the CA said to, and renews at the time the advice picked.
/// </summary>
public interface IRenewalInfoSource
{
    /// <summary>The CA's advice for the certificate whose chain is <paramref name="chainPem"/>; null when the CA offers none.</summary>
    /// <exception cref="IssuanceException">The CA could not be asked.</exception>
    Task<RenewalAdvice?> GetRenewalAdviceAsync(string chainPem, CancellationToken cancellationToken);
}

/// <summary>A CA's renewal advice: its suggested window, the time picked in it, and when to ask again.</summary>
public sealed record RenewalAdvice(DateTimeOffset WindowStart, DateTimeOffset WindowEnd, DateTimeOffset RenewAt, DateTimeOffset CheckAgainAt, Uri? Explanation);

/// <summary>What to issue.</summary>
/// <param name="CertificateId">The certificate record's id (for logs and issuer-side bookkeeping).</param>
/// <param name="Names">DNS names (and, for internal certificates, IP addresses) the certificate must cover.</param>
/// <param name="CertificateSigningRequestDer">A PKCS#10 request signed by the new key.</param>
/// <param name="PreviousChainPem">The chain being renewed, when there is one (ACME sends <c>replaces</c> for it).</param>
public sealed record IssuanceRequest(string CertificateId, IReadOnlyList<string> Names, byte[] CertificateSigningRequestDer, string? PreviousChainPem = null)
{
    /// <summary>The certificate profile the site asks for (ACME profiles); issuers without profiles ignore it.</summary>
    public string? Profile { get; init; }
}

/// <summary>An issued chain: PEM, leaf first, intermediates after, root left out.</summary>
public sealed record IssuedChain(string ChainPem);

/// <summary>An issuer failed. <see cref="Retryable"/> false means trying again unchanged will fail the same way.</summary>
public sealed class IssuanceException(string message, bool retryable, DateTimeOffset? retryAfter = null, Exception? innerException = null)
    : Exception(message, innerException)
{
    public bool Retryable { get; } = retryable;

    /// <summary>The earliest time the issuer asked to be tried again, when it said.</summary>
    public DateTimeOffset? RetryAfter { get; } = retryAfter;
}
