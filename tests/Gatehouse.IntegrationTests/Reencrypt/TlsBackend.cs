using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Gatehouse.IntegrationTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace Gatehouse.IntegrationTests.Reencrypt;

/// <summary>
/// A real HTTPS backend (Kestrel on 127.0.0.1 with its own certificate) that records what the edge did: the SNI
/// of every handshake, the number of handshakes, the client certificate presented, the requests it got. It can
/// require a client certificate from a given CA, fail its health check on demand, and hold <c>/slow</c> requests
/// until released.
/// </summary>
public sealed class TlsBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _handshakes;
    private int _requests;
    private int _slowWaiting;

    private TlsBackend(WebApplication app, string name, int port)
    {
        _app = app;
        Name = name;
        Port = port;
    }

    public string Name { get; }

    public int Port { get; }

    public string Url => $"https://127.0.0.1:{Port}";

    /// <summary>The SNI name of each handshake ("" when none was sent).</summary>
    public ConcurrentQueue<string> ServerNames { get; } = new();

    public int Handshakes => Volatile.Read(ref _handshakes);

    /// <summary>Requests that reached the application (after a completed handshake).</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Requests to <c>/slow</c> waiting for <see cref="ReleaseSlow"/>.</summary>
    public int SlowWaiting => Volatile.Read(ref _slowWaiting);

    private volatile int _healthStatus = 200;

    /// <summary>What <c>/healthz</c> answers.</summary>
    public int HealthStatus
    {
        get => _healthStatus;
        set => _healthStatus = value;
    }

    /// <summary>Starts on <paramref name="port"/> (a free one when null).</summary>
    public static async Task<TlsBackend> StartAsync(string name, X509Certificate2 certificate, X509Certificate2? requireClientCertificateFrom = null, int? port = null)
    {
        var chosenPort = port ?? Ports.Free();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        TlsBackend? backend = null;
        var context = SslStreamCertificateContext.Create(certificate, null, offline: true);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, chosenPort, listen => listen.UseHttps(new TlsHandshakeCallbackOptions
        {
            OnConnection = connection =>
            {
                Interlocked.Increment(ref backend!._handshakes);
                backend.ServerNames.Enqueue(connection.ClientHelloInfo.ServerName ?? "");
                var options = new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = context,
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                };
                if (requireClientCertificateFrom is { } clientCa)
                {
                    options.ClientCertificateRequired = true;
                    options.RemoteCertificateValidationCallback = (_, presented, _, _) =>
                    {
                        if (presented is null)
                        {
                            return false;
                        }

                        using var chain = new X509Chain();
                        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                        chain.ChainPolicy.CustomTrustStore.Add(clientCa);
                        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                        return chain.Build(new X509Certificate2(presented));
                    };
                }

                return ValueTask.FromResult(options);
            },
        })));
        var app = builder.Build();
        app.Run(async http =>
        {
            if (http.Request.Path == "/healthz")
            {
                http.Response.StatusCode = backend!.HealthStatus;
                return;
            }

            Interlocked.Increment(ref backend!._requests);
            if (http.Request.Path == "/slow")
            {
                var release = backend._release.Task;
                Interlocked.Increment(ref backend._slowWaiting);
                await release.WaitAsync(TimeSpan.FromSeconds(60));
            }

            var client = http.Connection.ClientCertificate ?? await http.Connection.GetClientCertificateAsync();
            var seen = new Dictionary<string, string>
            {
                ["backend"] = name,
                ["host"] = http.Request.Host.Value ?? "",
                ["clientCertificate"] = client?.Subject ?? "",
                ["forwardedProto"] = http.Request.Headers["X-Forwarded-Proto"].ToString(),
            };
            http.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(http.Response.Body, seen);
        });
        await app.StartAsync();
        backend = new TlsBackend(app, name, chosenPort);
        return backend;
    }

    /// <summary>Lets every waiting <c>/slow</c> request answer.</summary>
    public void ReleaseSlow() => _release.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        ReleaseSlow();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
