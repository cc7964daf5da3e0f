namespace Gatehouse.Tests.Dns;

/// <summary>
/// TSIG test vectors (RFC 8945 §4 message layout) made by an independent implementation, dnspython 2.3.0, with its
/// clock fixed at 1,700,000,000 (2023-11-14T22:13:20Z) and fudge 300: an UPDATE of zone acme.test. (ID 0x1234) that
/// adds <c>_acme-challenge.a.acme.test. 60 TXT "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"</c> and deletes the value
/// "old" (class NONE), signed with key <c>gatehouse.</c>, and its NOERROR response signed over the request MAC.
/// The HMAC-SHA256 secret is octets 0..31, the HMAC-SHA512 one 0..63.
/// </summary>
internal static class TsigVectors
{
    public const long TimeSigned = 1_700_000_000;

    public static byte[] Sha256Secret => Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();

    public static byte[] Sha512Secret => Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();

    private const string Body = "1234280000010000000200010461636d65047465737400000600010f5f61636d652d6368616c6c656e67650161c00c001000010000003c002c2b4c6f71586359563871354f4e624a5178626d52375343544e6f337469415844666f77796a78416a45755830c01b001000fe000000000004036f6c64";

    public static byte[] Sha256Request => Convert.FromHexString(Body
        + "0967617465686f7573650000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c0020ae8598cd98cd4bbd03c225a2b04e5923dd0b4cbff935263e60b6e7f859ff54c3123400000000");

    public static byte[] Sha256RequestMac => Convert.FromHexString("ae8598cd98cd4bbd03c225a2b04e5923dd0b4cbff935263e60b6e7f859ff54c3");

    public static byte[] Sha256Response => Convert.FromHexString(
        "1234a80000010000000000010461636d65047465737400000600010967617465686f7573650000fa00ff00000000003d0b686d61632d7368613235360000006553f100012c0020e5a4cda9c1e9e49591ff09775eeec5ef81b18d1f1716e846c406c11127d6dc2d123400000000");

    public static byte[] Sha512Request => Convert.FromHexString(Body
        + "0967617465686f7573650000fa00ff00000000005d0b686d61632d7368613531320000006553f100012c0040bd7f7464f0d8d49a78822679ef48cc6cdd13b7268bfc8cfdfca9b77c6a2d3094e061a3670589647ef5691562dc15eb079a32adf644714ca4f63001cb11c263d8123400000000");

    public static byte[] Sha512RequestMac => Convert.FromHexString(
        "bd7f7464f0d8d49a78822679ef48cc6cdd13b7268bfc8cfdfca9b77c6a2d3094e061a3670589647ef5691562dc15eb079a32adf644714ca4f63001cb11c263d8");

    public static byte[] Sha512Response => Convert.FromHexString(
        "1234a80000010000000000010461636d65047465737400000600010967617465686f7573650000fa00ff00000000005d0b686d61632d7368613531320000006553f100012c0040fc427917699725ea06eb4e984d30621ff0c8ab403ebbf71eeccd9d8793505106349261f074b7157a43060179f50d2daec2cf34cd9f9e33bb5c1a113737ed80d9123400000000");
}
