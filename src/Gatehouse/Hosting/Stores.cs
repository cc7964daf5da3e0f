using System.Security.Cryptography;
using System.Text;
using Gatehouse.Storage;
using Gatehouse.Storage.Etcd;
using Gatehouse.Storage.Sqlite;

namespace Gatehouse.Hosting;

/// <summary>Opens the configured store, reading its secrets from where the configuration says.</summary>
internal static class Stores
{
    /// <summary>Opens the store <paramref name="options"/> name: SQLite in the data directory, or an etcd cluster.</summary>
    /// <exception cref="StoreUnavailableException">It cannot be opened (a file is unreadable).</exception>
    /// <exception cref="Keys.MasterKeyException">The etcd password cannot be read from where the configuration says.</exception>
    public static IStore Open(GatehouseOptions options, TimeProvider time, ILogger? logger = null, Func<string, string?>? environment = null) =>
        options.Store.Type == StoreType.Etcd
            ? EtcdStore.Open(ToEtcdStoreOptions(options.Store.Etcd!, environment ?? Environment.GetEnvironmentVariable), logger)
            : SqliteStore.Open(options.StorePath, time);

    /// <summary>The store's options for <paramref name="etcd"/>, with the password read.</summary>
    internal static EtcdStoreOptions ToEtcdStoreOptions(EtcdOptions etcd, Func<string, string?> environment)
    {
        string? password = null;
        if (etcd.Username is not null)
        {
            var (secret, _) = KeyProviders.ReadSecret(EtcdOptions.ConfigPath, etcd.PasswordEnvironmentVariable, etcd.PasswordFile, environment, "etcd password");
            password = Encoding.UTF8.GetString(secret);
            CryptographicOperations.ZeroMemory(secret);
        }

        return new EtcdStoreOptions
        {
            Endpoints = etcd.Endpoints,
            KeyPrefix = etcd.Prefix,
            CaFile = etcd.CaFile,
            CertificateFile = etcd.CertFile,
            KeyFile = etcd.KeyFile,
            Username = etcd.Username,
            Password = password,
            RequestTimeout = etcd.Timeout,
        };
    }
}
