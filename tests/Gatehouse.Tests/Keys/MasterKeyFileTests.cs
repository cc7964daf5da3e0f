using Gatehouse.Keys;

namespace Gatehouse.Tests.Keys;

public sealed class MasterKeyFileTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void LoadOrCreate_FirstTime_CreatesAnOwnerOnlyFileAndLoadsTheSameKeyAgain()
    {
        var path = Path.Combine(_directory.Path, "master.key");
        using var first = MasterKeyFile.LoadOrCreate(path);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var second = MasterKeyFile.LoadOrCreate(path);
        Assert.Equal(first.Id, second.Id);
        var wrapped = first.WrapKey(new byte[32], [1]);
        Assert.True(second.TryUnwrapKey(wrapped, [1], new byte[32]));
    }

    [Fact]
    public void LoadOrCreate_FileReadableByOthers_IsRefusedWithTheFix()
    {
        var path = Path.Combine(_directory.Path, "master.key");
        MasterKeyFile.LoadOrCreate(path).Dispose();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var ex = Assert.Throws<MasterKeyException>(() => MasterKeyFile.LoadOrCreate(path));
        Assert.Contains("0644", ex.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadOrCreate_MalformedFile_IsRefusedWithoutEchoingItsContent()
    {
        var path = Path.Combine(_directory.Path, "master.key");
        File.WriteAllText(path, "{\"format\":1,\"id\":\"x\",\"version\":1,\"algorithm\":\"AES-256-GCM\",\"key\":\"c2VjcmV0LXNob3J0\"}");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var ex = Assert.Throws<MasterKeyException>(() => MasterKeyFile.LoadOrCreate(path));
        Assert.Contains("malformed", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("c2VjcmV0", ex.Message, StringComparison.Ordinal);
    }
}
