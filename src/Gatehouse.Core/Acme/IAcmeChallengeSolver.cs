namespace Gatehouse.Acme;

/// <summary>
/// Publishes answers to one challenge type (<c>http-01</c>, <c>dns-01</c>, <c>tls-alpn-01</c>) where the CA will
/// look for them. <see cref="AcmeAccountSession.IssueCertificateAsync"/> picks, per authorization, the first solver
/// (in the order given) whose type the CA offers; calls for different answers run concurrently.
/// </summary>
public interface IAcmeChallengeSolver
{
    /// <summary>The challenge type answered (<see cref="AcmeChallenge.Http01"/>, <see cref="AcmeChallenge.Dns01"/>,
    /// <see cref="AcmeChallenge.TlsAlpn01"/>).</summary>
    string ChallengeType { get; }

    /// <summary>Publishes <paramref name="answer"/> and returns once the CA can see it (e.g. a TXT record visible at
    /// the authoritative servers): the CA is told to validate right after.</summary>
    Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken);

    /// <summary>Removes what <see cref="PrepareAsync"/> published; called once validation ended, however it ended,
    /// for every answer whose preparation was started.</summary>
    Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken);
}
