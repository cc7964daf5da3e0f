namespace Gatehouse.Acme;

/// <summary>An ACME server's directory (RFC 8555 §7.1.1; <c>renewalInfo</c>: RFC 9773 §4).</summary>
public sealed record AcmeDirectory
{
    public required Uri NewNonce { get; init; }

    public required Uri NewAccount { get; init; }

    public required Uri NewOrder { get; init; }

    /// <summary>Pre-authorization; most CAs offer none.</summary>
    public Uri? NewAuthz { get; init; }

    public Uri? RevokeCert { get; init; }

    public Uri? KeyChange { get; init; }

    /// <summary>ACME Renewal Information (RFC 9773); null when the CA does not offer it.</summary>
    public Uri? RenewalInfo { get; init; }

    public AcmeDirectoryMeta Meta { get; init => field = value ?? new(); } = new();
}

/// <summary>The directory's <c>meta</c> object (RFC 8555 §7.1.1; <c>profiles</c>: the ACME profiles extension).</summary>
public sealed record AcmeDirectoryMeta
{
    private static readonly IReadOnlyDictionary<string, string> EmptyProfiles = new Dictionary<string, string>();

    public Uri? TermsOfService { get; init; }

    public Uri? Website { get; init; }

    /// <summary>Names the CA recognises in CAA records as referring to itself.</summary>
    public IReadOnlyList<string> CaaIdentities { get; init => field = value ?? []; } = [];

    /// <summary>The CA requires external account binding on new accounts.</summary>
    public bool ExternalAccountRequired { get; init; }

    /// <summary>Certificate profiles the CA offers: name → human-readable description (or URL).</summary>
    public IReadOnlyDictionary<string, string> Profiles { get; init => field = value ?? EmptyProfiles; } = EmptyProfiles;
}
