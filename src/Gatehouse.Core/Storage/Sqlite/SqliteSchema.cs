using Microsoft.Data.Sqlite;

namespace Gatehouse.Storage.Sqlite;

/// <summary>
/// The SQLite schema and its migrations. The schema version is SQLite's <c>user_version</c>; each migration runs
/// in its own transaction and bumps it, so a crash mid-upgrade leaves the database at a whole version.
/// </summary>
internal static class SqliteSchema
{
    /// <summary>Migration i takes the database from version i to i + 1.</summary>
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO meta(name, value) VALUES ('revision', 0), ('compacted', 0);
        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value BLOB NOT NULL,
            create_rev INTEGER NOT NULL,
            mod_rev INTEGER NOT NULL,
            version INTEGER NOT NULL,
            lease INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE INDEX kv_lease ON kv(lease) WHERE lease <> 0;
        CREATE TABLE history (
            rev INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            key TEXT NOT NULL,
            value BLOB,
            create_rev INTEGER NOT NULL,
            version INTEGER NOT NULL,
            lease INTEGER NOT NULL,
            PRIMARY KEY (rev, seq)
        ) WITHOUT ROWID;
        CREATE TABLE leases (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
        CREATE INDEX leases_expiry ON leases(expires_ms);
        """,
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int CurrentVersion => Migrations.Length;

    public static void Migrate(SqliteConnection connection)
    {
        using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }

        var version = ReadUserVersion(connection);
        if (version > CurrentVersion)
        {
            throw new StoreUnavailableException(
                $"The store has schema version {version}, newer than this build's {CurrentVersion}: upgrade Gatehouse, or restore a backup made by this version.");
        }

        for (; version < CurrentVersion; version++)
        {
            using var tx = connection.BeginTransaction(deferred: false);
            if (ReadUserVersion(connection, tx) != version)
            {
                continue; // another process migrated meanwhile
            }

            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = Migrations[version] + $"\nPRAGMA user_version = {version + 1};";
            command.ExecuteNonQuery();
            tx.Commit();
        }
    }

    public static long ReadRevision(SqliteSession session, SqliteTransaction tx) => ReadMeta(session, tx, "revision");

    public static void WriteRevision(SqliteSession session, SqliteTransaction tx, long revision) => WriteMeta(session, tx, "revision", revision);

    public static long ReadCompacted(SqliteSession session, SqliteTransaction tx) => ReadMeta(session, tx, "compacted");

    public static void WriteCompacted(SqliteSession session, SqliteTransaction tx, long revision) => WriteMeta(session, tx, "compacted", revision);

    private static int ReadUserVersion(SqliteConnection connection, SqliteTransaction? tx = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "PRAGMA user_version";
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static long ReadMeta(SqliteSession session, SqliteTransaction tx, string name)
    {
        var command = session.Command("SELECT value FROM meta WHERE name = $name", tx);
        command.Parameters.AddWithValue("$name", name);
        return (long)command.ExecuteScalar()!;
    }

    private static void WriteMeta(SqliteSession session, SqliteTransaction tx, string name, long value)
    {
        var command = session.Command("UPDATE meta SET value = $value WHERE name = $name", tx);
        command.Parameters.AddWithValue("$name", name);
        command.Parameters.AddWithValue("$value", value);
        command.ExecuteNonQuery();
    }
}
