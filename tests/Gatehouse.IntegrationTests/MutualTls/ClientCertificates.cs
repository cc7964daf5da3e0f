using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gatehouse.IntegrationTests.MutualTls;

/// <summary>
/// Client certificates for the mutual TLS tests, made with <see cref="CertificateRequest"/>: the sites' client CA and a
/// second, wrong CA; a good client, an expired one, one whose subject and SANs no allow-list names, and one with the
/// good client's subject issued by the wrong CA. Each is written as PEM certificate + key files for curl and openssl.
/// </summary>
public sealed class ClientCertificates : IDisposable
{
    public const string GoodSubject = "CN=client1, O=Gatehouse Tests";

    private readonly List<X509Certificate2> _owned = [];

    public ClientCertificates(string directory)
    {
        Directory = directory;
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Ca = Own(NewCa("Gatehouse Test Client CA", caKey, now));
        using var wrongKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        WrongCa = Own(NewCa("Gatehouse Wrong Client CA", wrongKey, now));
        CaPemPath = Write("client-ca.pem", Ca.ExportCertificatePem());
        WrongCaPemPath = Write("wrong-ca.pem", WrongCa.ExportCertificatePem());

        Good = Issue("good", GoodSubject, ["client1.test"], "client1@gatehouse.test", "spiffe://gatehouse.test/client1", Ca, caKey, now.AddHours(-1), now.AddHours(12));
        Expired = Issue("expired", "CN=old-client, O=Gatehouse Tests", ["client1.test"], null, null, Ca, caKey, now.AddDays(-3), now.AddDays(-1));
        Stranger = Issue("stranger", "CN=stranger, O=Elsewhere", ["stranger.test"], null, null, Ca, caKey, now.AddHours(-1), now.AddHours(12));
        FromWrongCa = Issue("client-of-wrong-ca", GoodSubject, ["client1.test"], null, null, WrongCa, wrongKey, now.AddHours(-1), now.AddHours(12));
    }

    public string Directory { get; }

    public X509Certificate2 Ca { get; }

    public X509Certificate2 WrongCa { get; }

    public string CaPemPath { get; }

    public string WrongCaPemPath { get; }

    public ClientCertificate Good { get; }

    public ClientCertificate Expired { get; }

    public ClientCertificate Stranger { get; }

    public ClientCertificate FromWrongCa { get; }

    public void Dispose()
    {
        foreach (var certificate in _owned)
        {
            certificate.Dispose();
        }
    }

    private static X509Certificate2 NewCa(string name, ECDsa key, DateTimeOffset now)
    {
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(now.AddDays(-10), now.AddDays(10));
    }

    private ClientCertificate Issue(string file, string subject, string[] dnsNames, string? email, string? uri, X509Certificate2 issuer, ECDsa issuerKey, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            san.AddDnsName(name);
        }

        if (email is not null)
        {
            san.AddEmailAddress(email);
        }

        if (uri is not null)
        {
            san.AddUri(new Uri(uri));
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        var signer = X509SignatureGenerator.CreateForECDsa(issuerKey);
        var certificate = Own(request.Create(issuer.SubjectName, signer, notBefore, notAfter, RandomNumberGenerator.GetBytes(16)));
        return new ClientCertificate(certificate, Write(file + ".pem", certificate.ExportCertificatePem()), Write(file + ".key", key.ExportPkcs8PrivateKeyPem()));
    }

    private X509Certificate2 Own(X509Certificate2 certificate)
    {
        _owned.Add(certificate);
        return certificate;
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllText(path, content);
        return path;
    }
}

/// <summary>A client certificate and where its PEM files are.</summary>
public sealed record ClientCertificate(X509Certificate2 Certificate, string CertPath, string KeyPath);
