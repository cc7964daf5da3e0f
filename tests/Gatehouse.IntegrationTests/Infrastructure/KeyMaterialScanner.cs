using System.Text;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>
/// Looks through files for private-key material: PEM private-key headers, the DER openings of PKCS#8 and SEC1
/// (RFC 5915) EC private keys, and the raw private scalars of keys the test knows about.
/// </summary>
public sealed class KeyMaterialScanner(IReadOnlyList<byte[]> knownScalars)
{
    private static readonly (string Name, byte[] Pattern)[] Patterns =
    [
        ("PEM private key header", Encoding.ASCII.GetBytes("PRIVATE KEY-----")),
        // PKCS#8 PrivateKeyInfo: version 0, AlgorithmIdentifier { id-ecPublicKey ... }
        ("PKCS#8 EC private key", [0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]),
        // RFC 5915 ECPrivateKey: version 1, privateKey OCTET STRING (32 bytes for P-256)
        ("SEC1 P-256 private key", [0x02, 0x01, 0x01, 0x04, 0x20]),
        // ... and 48 bytes for P-384
        ("SEC1 P-384 private key", [0x02, 0x01, 0x01, 0x04, 0x30]),
    ];

    /// <summary>Opens each sealed EC key with <paramref name="cipher"/> (the test holds the master key, as an operator
    /// could) and returns the private scalars, for <see cref="KeyMaterialScanner"/> to look for.</summary>
    public static List<byte[]> Scalars(Gatehouse.Keys.EnvelopeCipher cipher, IEnumerable<(string RecordKey, byte[] Sealed)> sealedKeys)
    {
        var scalars = new List<byte[]>();
        foreach (var (key, sealedKey) in sealedKeys)
        {
            using var plaintext = cipher.Open(key, sealedKey);
            using var ecdsa = System.Security.Cryptography.ECDsa.Create();
            ecdsa.ImportPkcs8PrivateKey(plaintext.Span, out _);
            scalars.Add(ecdsa.ExportParameters(includePrivateParameters: true).D!);
        }

        return scalars;
    }

    /// <summary>Every finding: the file and what was found in it.</summary>
    public List<(string File, string What)> Scan(string directory, string? except)
    {
        var findings = new List<(string, string)>();
        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            if (except is not null && Path.GetFileName(file) == except)
            {
                continue;
            }

            var bytes = ReadShared(file);
            foreach (var (name, pattern) in Patterns)
            {
                if (bytes.AsSpan().IndexOf(pattern) >= 0)
                {
                    findings.Add((file, name));
                }
            }

            foreach (var scalar in knownScalars)
            {
                if (bytes.AsSpan().IndexOf(scalar) >= 0)
                {
                    findings.Add((file, "a known private scalar"));
                }
            }
        }

        return findings;
    }

    private static byte[] ReadShared(string file)
    {
        // The store is open while we read: share read and write.
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
