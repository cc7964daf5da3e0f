using Gatehouse.Acme;
using Gatehouse.Dns;

namespace Gatehouse.Certificates;

/// <summary>
/// DNS-01 answers through a DNS provider (RFC 2136 dynamic update, or an exec hook): the TXT record is published, and
/// the CA is asked to validate only once the authoritative servers answer with it.
/// </summary>
public sealed class AcmeDns01Solver(IDnsChallengeProvider provider, TimeSpan visibilityTimeout) : IAcmeChallengeSolver
{
    public string ChallengeType => AcmeChallenge.Dns01;

    public async Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken)
    {
        try
        {
            await provider.PresentAsync(answer.Dns01RecordName, answer.Dns01TxtValue, cancellationToken);
            await provider.WaitUntilVisibleAsync(answer.Dns01RecordName, answer.Dns01TxtValue, visibilityTimeout, cancellationToken);
        }
        catch (DnsException ex)
        {
            throw new AcmeException(new AcmeProblem
            {
                Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Dns,
                Title = "The DNS-01 record could not be published",
                Detail = $"{answer.Dns01RecordName}: {ex.Message}",
                Identifier = answer.Identifier,
            }, ex);
        }
    }

    public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) =>
        provider.CleanupAsync(answer.Dns01RecordName, answer.Dns01TxtValue, cancellationToken);
}
