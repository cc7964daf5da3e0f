using Gatehouse.Dns;
using Gatehouse.IntegrationTests.Infrastructure;

namespace Gatehouse.IntegrationTests.Dns;

/// <summary>The exec-hook provider running real scripts: what they receive, how their failures read, and a hook that
/// publishes through nsupdate into a real BIND.</summary>
public sealed class ExecHookProviderTests(Bind bind) : IClassFixture<Bind>, IDisposable
{
    private const string Name = "_acme-challenge.www.acme.test.";
    private readonly string _directory = Directory.CreateTempSubdirectory("gatehouse-hook-").FullName;

    private string Script(string name, string body)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private ExecHookProvider Provider(string command, TimeSpan? timeout = null, IReadOnlyList<string>? arguments = null, IReadOnlyDictionary<string, string>? environment = null) => new(new ExecHookOptions
    {
        Command = command,
        Arguments = arguments ?? [],
        Environment = environment ?? new Dictionary<string, string>(),
        Timeout = timeout ?? TimeSpan.FromSeconds(30),
        Visibility = new DnsVisibilityOptions { Resolver = bind.Server, AuthoritativePort = bind.Port },
    });

    [Fact]
    public async Task PresentAndCleanup_PassActionNameAndValueAsArgumentsAndEnvironment()
    {
        var log = Path.Combine(_directory, "calls.log");
        var hook = Script("record.sh", $"""echo "$# [$1] [$2] [$3] [$4] | $GATEHOUSE_DNS_ACTION $GATEHOUSE_DNS_NAME $GATEHOUSE_DNS_VALUE | $EXTRA" >> '{log}'""");
        var provider = Provider(hook, arguments: ["--zone-id", "a b; $(rm -rf /)"], environment: new Dictionary<string, string> { ["EXTRA"] = "api-token" });

        await provider.PresentAsync(Name, "value-1", CancellationToken.None);
        await provider.CleanupAsync("_acme-challenge.www.acme.test", "value-1", CancellationToken.None);

        Assert.Equal(
        [
            $"5 [--zone-id] [a b; $(rm -rf /)] [present] [{Name}] | present {Name} value-1 | api-token",
            $"5 [--zone-id] [a b; $(rm -rf /)] [cleanup] [{Name}] | cleanup {Name} value-1 | api-token",
        ], await File.ReadAllLinesAsync(log));
    }

    [Fact]
    public async Task PresentAsync_NonZeroExit_FailsWithTheExitStatusAndStderr()
    {
        var hook = Script("fail.sh", "echo 'progress on stdout'\necho 'DNS API said: zone locked' >&2\nexit 3");

        var error = await Assert.ThrowsAsync<DnsException>(() => Provider(hook).PresentAsync(Name, "v", CancellationToken.None));

        Assert.Equal($"DNS hook {hook} present {Name} failed with exit status 3; stderr: DNS API said: zone locked", error.Message);
        Assert.False(error.Transient);
    }

    [Fact]
    public async Task PresentAsync_HugeStderr_QuotesOnlyItsTail()
    {
        var hook = Script("noisy.sh", "i=0; while [ $i -lt 2000 ]; do echo \"line $i of noise\" >&2; i=$((i+1)); done; echo 'the real reason' >&2; exit 1");

        var error = await Assert.ThrowsAsync<DnsException>(() => Provider(hook).PresentAsync(Name, "v", CancellationToken.None));

        Assert.EndsWith("the real reason", error.Message);
        Assert.InRange(error.Message.Length, 2048, 2048 + 200);
        Assert.DoesNotContain("line 0 of noise", error.Message);
    }

    [Fact]
    public async Task PresentAsync_HookOutlivesTheTimeout_IsKilled()
    {
        var marker = Path.Combine(_directory, "survived");
        var hook = Script("slow.sh", $"echo 'waiting for the API' >&2\nsleep 30\ntouch '{marker}'");

        var error = await Assert.ThrowsAsync<DnsException>(() => Provider(hook, TimeSpan.FromMilliseconds(500)).PresentAsync(Name, "v", CancellationToken.None));

        Assert.Contains("did not finish within 0.5 s and was killed", error.Message);
        Assert.Contains("waiting for the API", error.Message);
        Assert.True(error.Transient);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task PresentAsync_MissingCommand_FailsClearly()
    {
        var missing = Path.Combine(_directory, "no-such-hook");

        var error = await Assert.ThrowsAsync<DnsException>(() => Provider(missing).PresentAsync(Name, "v", CancellationToken.None));

        Assert.StartsWith($"DNS hook {missing} present {Name} could not start", error.Message);
    }

    [Fact]
    public async Task PresentAsync_HookRunningNsupdate_IsVisibleThroughTheZonesNameservers()
    {
        // A typical hook: nsupdate with a key from the environment. The wait finds ns.acme.test. through NS records.
        var hook = Script("nsupdate.sh", """
            case "$GATEHOUSE_DNS_ACTION" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
            printf 'server 127.0.0.1 %s\nupdate %s %s 60 TXT "%s"\nsend\n' "$BIND_PORT" "$op" "$GATEHOUSE_DNS_NAME" "$GATEHOUSE_DNS_VALUE" \
              | nsupdate -y "hmac-sha256:gatehouse:$TSIG_SECRET"
            """);
        var provider = Provider(hook, environment: new Dictionary<string, string>
        {
            ["BIND_PORT"] = bind.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TSIG_SECRET"] = Convert.ToBase64String(bind.Secret),
        });
        var name = $"_acme-challenge.{Guid.NewGuid():N}.{Bind.Zone}";

        await provider.PresentAsync(name, "hooked-value", CancellationToken.None);
        await provider.WaitUntilVisibleAsync(name, "hooked-value", TimeSpan.FromSeconds(10), CancellationToken.None);
        await provider.CleanupAsync(name, "hooked-value", CancellationToken.None);

        Assert.Empty(await bind.DigTxtAsync(name));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
