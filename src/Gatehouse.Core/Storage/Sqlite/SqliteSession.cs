using Microsoft.Data.Sqlite;

namespace Gatehouse.Storage.Sqlite;

/// <summary>
/// One open connection of the store, used by one caller at a time, with its statements prepared once: a
/// <see cref="SqliteCommand"/> keeps its prepared statements while its text and connection stay the same, so each
/// statement is parsed on its first use here and only bound and stepped after. The store keeps its writer session
/// for its life and its reader sessions in a small pool (<see cref="SqliteStore"/>).
/// </summary>
internal sealed class SqliteSession : IDisposable
{
    private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);

    private SqliteSession(SqliteConnection connection) => Connection = connection;

    public SqliteConnection Connection { get; }

    /// <summary>Opens a connection and sets what SQLite keeps per connection: wait up to 30 s for another writer's
    /// lock (another process on the same file), and sync the WAL at checkpoints rather than at every commit (WAL
    /// mode stays consistent after a crash; a power cut may lose the last commits).</summary>
    public static SqliteSession Open(string connectionString)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();
            using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA busy_timeout = 30000; PRAGMA synchronous = NORMAL;";
            pragma.ExecuteNonQuery();
            return new SqliteSession(connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The session's command for <paramref name="sql"/>, without parameters, in <paramref name="transaction"/>.
    /// The session owns it: callers add parameters and execute it, and never dispose it.</summary>
    public SqliteCommand Command(string sql, SqliteTransaction? transaction = null)
    {
        if (!_commands.TryGetValue(sql, out var command))
        {
            command = Connection.CreateCommand();
            command.CommandText = sql;
            _commands.Add(sql, command);
        }

        command.Transaction = transaction;
        command.Parameters.Clear();
        return command;
    }

    /// <summary>Starts a transaction: deferred (a read snapshot) or immediate (takes the write lock now).</summary>
    public SqliteTransaction Begin(bool deferred) => Connection.BeginTransaction(deferred);

    public void Dispose()
    {
        foreach (var command in _commands.Values)
        {
            command.Dispose();
        }

        _commands.Clear();
        Connection.Dispose();
    }
}
