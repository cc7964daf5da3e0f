using System.Security.Cryptography;
using System.Text;
using Gatehouse.Storage;

namespace Gatehouse.Admin;

/// <summary>
/// The admin API's bearer token. Created on first start into a 0600 file; the store keeps only its SHA-256, so a
/// copy of the store does not grant admin access. Comparison is constant-time.
/// </summary>
public sealed class AdminToken
{
    private const int TokenBytes = 32;
    private readonly byte[] _hash;

    private AdminToken(byte[] hash) => _hash = hash;

    /// <summary>Loads the token hash, creating token and file when the store has none or the file is gone.</summary>
    public static async Task<AdminToken> EnsureAsync(IStore store, string tokenPath, Action<string> warn, CancellationToken cancellationToken)
    {
        var entry = await store.GetAsync(StoreKeys.AdminTokenHash, cancellationToken);
        if (entry is not null && File.Exists(tokenPath))
        {
            var onDisk = Hash(File.ReadAllText(tokenPath).Trim());
            if (CryptographicOperations.FixedTimeEquals(onDisk, entry.Value.Span))
            {
                return new AdminToken(entry.Value.ToArray());
            }

            warn($"The admin token in '{tokenPath}' does not match the store's; a new token was written there.");
        }
        else if (entry is not null)
        {
            warn($"The admin token file '{tokenPath}' is missing; a new token was written there and the old one no longer works.");
        }

        var token = Base64Url(RandomNumberGenerator.GetBytes(TokenBytes));
        var hash = Hash(token);
        var temp = tokenPath + ".new";
        File.Delete(temp);
        await using (var stream = new FileStream(temp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(token + "\n"), cancellationToken);
        }

        var condition = entry is null ? StoreCondition.Absent(StoreKeys.AdminTokenHash) : StoreCondition.Unchanged(StoreKeys.AdminTokenHash, entry.ModRevision);
        if (!(await store.CommitAsync(new StoreTransaction().If(condition).Put(StoreKeys.AdminTokenHash, hash), cancellationToken)).Succeeded)
        {
            File.Delete(temp);
            throw new InvalidOperationException("Another process changed the admin token at the same time; start again.");
        }

        File.Move(temp, tokenPath, overwrite: true);
        return new AdminToken(hash);
    }

    /// <summary>Whether an <c>Authorization</c> header carries the token.</summary>
    public bool IsAuthorized(string? authorization)
    {
        const string Scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(Hash(authorization[Scheme.Length..].Trim()), _hash);
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
