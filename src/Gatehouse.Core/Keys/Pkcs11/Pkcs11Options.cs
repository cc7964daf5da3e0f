using System.Text;

namespace Gatehouse.Keys.Pkcs11;

/// <summary>A master key provider backed by a PKCS#11 token (an HSM, or SoftHSM2 in tests).</summary>
/// <remarks>The PIN never appears in <see cref="object.ToString"/>: the generated record printer is replaced.</remarks>
public sealed record Pkcs11Options
{
    /// <summary>The provider's name in the configuration; the key ring records it for each version.</summary>
    public required string Name { get; init; }

    /// <summary>The PKCS#11 module, e.g. <c>/usr/lib/softhsm/libsofthsm2.so</c>.</summary>
    public required string LibraryPath { get; init; }

    /// <summary>The label of the token (CKA_LABEL of the token info) that holds the master keys.</summary>
    public required string TokenLabel { get; init; }

    /// <summary>The user PIN, already read by the configuration layer from an environment variable or a file.</summary>
    public required string Pin { get; init; }

    /// <summary>The label of master key version 1; version N &gt; 1 is <c>{KeyLabel}-v{N}</c>.</summary>
    public required string KeyLabel { get; init; }

    /// <summary>How many sessions may run operations at once (PKCS#11 sessions are not safe for concurrent use).</summary>
    public int PoolSize { get; init; } = 8;

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Name = ").Append(Name)
            .Append(", LibraryPath = ").Append(LibraryPath)
            .Append(", TokenLabel = ").Append(TokenLabel)
            .Append(", Pin = (hidden), KeyLabel = ").Append(KeyLabel)
            .Append(", PoolSize = ").Append(PoolSize);
        return true;
    }
}
