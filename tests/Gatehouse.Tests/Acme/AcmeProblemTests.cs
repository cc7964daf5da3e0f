using System.Text;
using Gatehouse.Acme;

namespace Gatehouse.Tests.Acme;

public sealed class AcmeProblemTests
{
    // RFC 8555 §6.7.1: a problem with subproblems for single identifiers.
    private const string Rfc8555Subproblems = """
        {
            "type": "urn:ietf:params:acme:error:malformed",
            "detail": "Some of the identifiers requested were rejected",
            "subproblems": [
                {
                    "type": "urn:ietf:params:acme:error:malformed",
                    "detail": "Invalid underscore in DNS name \"_example.org\"",
                    "identifier": { "type": "dns", "value": "_example.org" }
                },
                {
                    "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                    "detail": "This CA will not issue for \"example.net\"",
                    "identifier": { "type": "dns", "value": "example.net" }
                }
            ]
        }
        """;

    [Fact]
    public void TryParse_Rfc8555SubproblemExample_ReadsEveryField()
    {
        Assert.True(AcmeProblem.TryParse(Encoding.UTF8.GetBytes(Rfc8555Subproblems), out var problem));

        Assert.Equal(AcmeErrors.Malformed, problem.AcmeError);
        Assert.Equal("Some of the identifiers requested were rejected", problem.Detail);
        Assert.Equal(2, problem.Subproblems.Count);
        Assert.Equal(new AcmeIdentifier("dns", "_example.org"), problem.Subproblems[0].Identifier);
        Assert.True(problem.Subproblems[1].Is(AcmeErrors.RejectedIdentifier));
        Assert.Equal(new AcmeIdentifier("dns", "example.net"), problem.Subproblems[1].Identifier);
        Assert.False(problem.IsRetryable);
        Assert.Contains("dns:example.net: rejectedIdentifier", problem.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void TryParse_Rfc7807Fields_AllKept()
    {
        var json = """{"type":"urn:ietf:params:acme:error:rateLimited","title":"Too many","detail":"5 per week","status":429,"instance":"https://acme.test/docs/rate"}"""u8;

        Assert.True(AcmeProblem.TryParse(json, out var problem));

        Assert.Equal("urn:ietf:params:acme:error:rateLimited", problem.Type);
        Assert.Equal("Too many", problem.Title);
        Assert.Equal(429, problem.Status);
        Assert.Equal("https://acme.test/docs/rate", problem.Instance);
        Assert.Empty(problem.Subproblems);
        Assert.True(problem.IsRetryable);
    }

    [Theory]
    [InlineData("")]
    [InlineData("<html>503</html>")]
    [InlineData("[1,2]")]
    [InlineData("{\"type\":")]
    [InlineData("{\"status\":\"four hundred\"}")]
    public void TryParse_NotAProblemDocument_False(string body)
    {
        Assert.False(AcmeProblem.TryParse(Encoding.UTF8.GetBytes(body), out _));
    }

    [Theory]
    [InlineData(AcmeErrors.BadNonce, true)]
    [InlineData(AcmeErrors.RateLimited, true)]
    [InlineData(AcmeErrors.ServerInternal, true)]
    [InlineData(AcmeErrors.Connection, true)]
    [InlineData(AcmeErrors.Dns, true)]
    [InlineData(AcmeErrors.Malformed, false)]
    [InlineData(AcmeErrors.Unauthorized, false)]
    [InlineData(AcmeErrors.RejectedIdentifier, false)]
    [InlineData(AcmeErrors.Caa, false)]
    [InlineData(AcmeErrors.BadCsr, false)]
    [InlineData(AcmeErrors.AccountDoesNotExist, false)]
    [InlineData(AcmeErrors.ExternalAccountRequired, false)]
    [InlineData(AcmeErrors.AlreadyRevoked, false)]
    [InlineData(AcmeErrors.IncorrectResponse, false)]
    public void IsRetryable_AcmeErrors(string acmeError, bool retryable)
    {
        Assert.Equal(retryable, new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + acmeError }.IsRetryable);
    }

    [Theory]
    [InlineData(AcmeProblem.TransportType, null, true)]
    [InlineData(AcmeProblem.InvalidResponseType, null, true)]
    [InlineData(AcmeProblem.NoUsableChallengeType, null, false)]
    [InlineData(AcmeProblem.ProfileNotOfferedType, null, false)]
    [InlineData("about:blank", 503, true)]
    [InlineData("about:blank", 429, true)]
    [InlineData("about:blank", 404, false)]
    [InlineData("https://ca.example/problems/other", 500, true)]
    [InlineData("https://ca.example/problems/other", 400, false)]
    public void IsRetryable_OtherTypes(string type, int? status, bool retryable)
    {
        Assert.Equal(retryable, new AcmeProblem { Type = type, Status = status }.IsRetryable);
    }

    [Fact]
    public void IsRetryable_Compound_OnlyWhenEverySubproblemIs()
    {
        var transient = new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Connection };
        var refused = new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Caa };
        var compound = new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Compound, Subproblems = [transient, transient] };

        Assert.True(compound.IsRetryable);
        Assert.False((compound with { Subproblems = [transient, refused] }).IsRetryable);
        Assert.False((compound with { Subproblems = [] }).IsRetryable);
    }

    [Fact]
    public void AcmeException_Message_IsTheProblemSummary()
    {
        var problem = new AcmeProblem { Type = AcmeProblem.AcmeErrorPrefix + AcmeErrors.Caa, Status = 403, Detail = "CAA forbids issuance", Identifier = AcmeIdentifier.Dns("example.test") };

        var exception = new AcmeException(problem);

        Assert.Equal("dns:example.test: caa (HTTP 403): CAA forbids issuance", exception.Message);
        Assert.Same(problem, exception.Problem);
        Assert.False(exception.IsRetryable);
    }
}
