using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Gatehouse.Acme;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>Answers HTTP-01 through pebble-challtestsrv's own HTTP responder (its management API).</summary>
public sealed class ChallTestSrvHttp01Solver(Pebble pebble) : IAcmeChallengeSolver
{
    public string ChallengeType => AcmeChallenge.Http01;

    public Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => pebble.AddHttp01Async(answer.Token, answer.Http01Body);

    public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => pebble.RemoveHttp01Async(answer.Token);
}

/// <summary>Answers DNS-01 through pebble-challtestsrv's DNS server (Pebble's resolver).</summary>
public sealed class ChallTestSrvDns01Solver(Pebble pebble) : IAcmeChallengeSolver
{
    public string ChallengeType => AcmeChallenge.Dns01;

    public Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => pebble.SetTxtAsync(answer.Dns01RecordName, answer.Dns01TxtValue);

    public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => pebble.ClearTxtAsync(answer.Dns01RecordName);
}

/// <summary>Answers TLS-ALPN-01 through pebble-challtestsrv, which makes the challenge certificate itself from the
/// key authorization.</summary>
public sealed class ChallTestSrvTlsAlpn01Solver(Pebble pebble) : IAcmeChallengeSolver
{
    public string ChallengeType => AcmeChallenge.TlsAlpn01;

    public Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => pebble.AddTlsAlpn01Async(answer.Identifier.Value, answer.KeyAuthorization);

    public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken) => pebble.RemoveTlsAlpn01Async(answer.Identifier.Value);
}

/// <summary>
/// A TLS-ALPN-01 responder of the test's own (SslStream on loopback) that serves the challenge certificate the
/// client library makes (<see cref="AcmeChallengeAnswer.CreateTlsAlpn01Certificate"/>), chosen by SNI, to clients
/// that offer <c>acme-tls/1</c>. It proves that certificate against Pebble's real validator.
/// </summary>
public sealed class OwnCertificateTlsAlpn01Responder : IAcmeChallengeSolver, IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly ConcurrentDictionary<string, X509Certificate2> _certificates = new(StringComparer.OrdinalIgnoreCase);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private int _handshakes;

    public OwnCertificateTlsAlpn01Responder(int port)
    {
        Port = port;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        _acceptLoop = AcceptAsync();
    }

    public string ChallengeType => AcmeChallenge.TlsAlpn01;

    public int Port { get; }

    /// <summary>Handshakes completed with <c>acme-tls/1</c> and a challenge certificate.</summary>
    public int Handshakes => Volatile.Read(ref _handshakes);

    public Task PrepareAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken)
    {
        _certificates[answer.Identifier.Value] = answer.CreateTlsAlpn01Certificate();
        return Task.CompletedTask;
    }

    public Task CleanupAsync(AcmeChallengeAnswer answer, CancellationToken cancellationToken)
    {
        if (_certificates.TryRemove(answer.Identifier.Value, out var certificate))
        {
            certificate.Dispose();
        }

        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _acceptLoop;
        }
        catch (Exception)
        {
            // stopped
        }

        _stop.Dispose();
        foreach (var certificate in _certificates.Values)
        {
            certificate.Dispose();
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            _ = HandshakeAsync(client);
        }
    }

    private async Task HandshakeAsync(TcpClient client)
    {
        using (client)
        await using (var tls = new SslStream(client.GetStream()))
        {
            try
            {
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ApplicationProtocols = [new SslApplicationProtocol(AcmeKeyAuthorization.TlsAlpn01Protocol)],
                    ServerCertificateSelectionCallback = (_, name) => name is not null && _certificates.TryGetValue(name, out var certificate) ? certificate : null!,
                }, _stop.Token);
                if (tls.NegotiatedApplicationProtocol.ToString() == AcmeKeyAuthorization.TlsAlpn01Protocol)
                {
                    Interlocked.Increment(ref _handshakes);
                }
            }
            catch (Exception)
            {
                // A validator that closes early, or an unknown name: nothing to serve.
            }
        }
    }
}
