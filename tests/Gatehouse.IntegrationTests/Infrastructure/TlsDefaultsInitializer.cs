using System.Runtime.CompilerServices;
using Gatehouse.Edge.Tls;

namespace Gatehouse.IntegrationTests.Infrastructure;

/// <summary>Gives the test process the TLS defaults <c>gatehouse</c> gives itself in <c>Main</c>, before anything in
/// the process loads OpenSSL, so in-process servers handshake (and resume sessions) as the real executable does.
/// Processes the tests start inherit the setting.</summary>
internal static class TlsDefaultsInitializer
{
#pragma warning disable CA2255 // A test assembly is the program here: its module is loaded before any test runs.
    [ModuleInitializer]
    internal static void Apply() => TlsProcessDefaults.Apply();
#pragma warning restore CA2255
}
