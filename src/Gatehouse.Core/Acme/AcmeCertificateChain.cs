using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Gatehouse.Acme;

/// <summary>A downloaded certificate chain (RFC 8555 §7.4.2): PEM, leaf first, then the intermediates.</summary>
public sealed record AcmeCertificateChain
{
    /// <summary>Where the chain was downloaded from.</summary>
    public required Uri Url { get; init; }

    /// <summary>The <c>application/pem-certificate-chain</c> text, leaf first.</summary>
    public required string Pem { get; init; }

    /// <summary>The leaf certificate's serial number, hexadecimal (upper case, as X509Certificate.SerialNumber gives it).</summary>
    public required string SerialNumber { get; init; }

    /// <summary>The issuer common name of the last certificate in the chain: the root it chains to.</summary>
    public required string RootIssuerName { get; init; }

    /// <summary>Other chains of the same certificate the server offers (<c>Link: rel="alternate"</c>).</summary>
    public IReadOnlyList<Uri> AlternateUrls { get; init; } = [];

    /// <summary>Whether this chain ends at an issuer named <paramref name="issuerCommonName"/> (case-insensitive).</summary>
    public bool ChainsTo(string issuerCommonName) =>
        string.Equals(RootIssuerName, issuerCommonName, StringComparison.OrdinalIgnoreCase);

    /// <summary>The leaf certificate; the caller disposes it.</summary>
    public X509Certificate2 LoadLeaf() => X509Certificate2.CreateFromPem(Pem);

    /// <summary>The certificates, leaf first; the caller disposes each.</summary>
    public X509Certificate2Collection LoadCertificates()
    {
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPem(Pem);
        return certificates;
    }

    /// <summary>Reads a chain response; false when it holds no certificate.</summary>
    internal static bool TryParse(AcmeResponse response, out AcmeCertificateChain chain)
    {
        chain = null!;
        var pem = Encoding.UTF8.GetString(response.Body);
        try
        {
            // Read in managed code: the chain is loaded through OpenSSL where it is served, not on every download.
            var certificates = CertificateFields.ReadPem(pem);
            if (certificates.Count == 0)
            {
                return false;
            }

            chain = new AcmeCertificateChain
            {
                Url = response.RequestUrl,
                Pem = pem,
                SerialNumber = certificates[0].SerialNumber,
                RootIssuerName = certificates[^1].IssuerSimpleName,
                AlternateUrls = AcmeHttpHeaders.Targets(response.Links, "alternate"),
            };
            return true;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false;
        }
    }
}
