namespace Gatehouse.Storage;

/// <summary>A condition a transaction checks before it applies its operations.</summary>
/// <param name="Key">The key to check.</param>
/// <param name="ModRevision">The mod revision the key must have; 0 means the key must not exist.</param>
public readonly record struct StoreCondition(string Key, long ModRevision)
{
    /// <summary>The key must not exist.</summary>
    public static StoreCondition Absent(string key) => new(key, 0);

    /// <summary>The key must exist unchanged since <paramref name="modRevision"/>.</summary>
    public static StoreCondition Unchanged(string key, long modRevision)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(modRevision);
        return new(key, modRevision);
    }
}

/// <summary>A write in a transaction: a put when <see cref="Value"/> is set, a delete otherwise.</summary>
public readonly record struct StoreOperation(string Key, ReadOnlyMemory<byte>? Value, long LeaseId)
{
    /// <summary>Creates or overwrites <paramref name="key"/>, optionally attached to a lease.</summary>
    public static StoreOperation Put(string key, ReadOnlyMemory<byte> value, long leaseId = 0) => new(key, value, leaseId);

    /// <summary>Deletes <paramref name="key"/>; deleting a missing key is not an error.</summary>
    public static StoreOperation Delete(string key) => new(key, null, 0);

    /// <summary>Whether this is a delete.</summary>
    public bool IsDelete => Value is null;
}

/// <summary>Conditions and operations applied all or nothing by <see cref="IStore.CommitAsync"/>.</summary>
public sealed class StoreTransaction
{
    private readonly List<StoreCondition> _conditions = [];
    private readonly List<StoreOperation> _operations = [];

    /// <summary>The conditions, all of which must hold.</summary>
    public IReadOnlyList<StoreCondition> Conditions => _conditions;

    /// <summary>The operations, applied in order at one revision.</summary>
    public IReadOnlyList<StoreOperation> Operations => _operations;

    /// <summary>Adds a condition.</summary>
    public StoreTransaction If(StoreCondition condition)
    {
        StoreKeys.Validate(condition.Key);
        _conditions.Add(condition);
        return this;
    }

    /// <summary>Adds a put.</summary>
    public StoreTransaction Put(string key, ReadOnlyMemory<byte> value, long leaseId = 0)
    {
        StoreKeys.Validate(key);
        if (value.Length > StoreLimits.MaxValueBytes)
        {
            throw new ArgumentException($"The value for '{key}' has {value.Length} bytes; the limit is {StoreLimits.MaxValueBytes}.", nameof(value));
        }

        AddOperation(StoreOperation.Put(key, value, leaseId));
        return this;
    }

    /// <summary>Adds a delete.</summary>
    public StoreTransaction Delete(string key)
    {
        StoreKeys.Validate(key);
        AddOperation(StoreOperation.Delete(key));
        return this;
    }

    private void AddOperation(StoreOperation operation)
    {
        if (_operations.Count == StoreLimits.MaxOperations)
        {
            throw new ArgumentException($"A transaction has at most {StoreLimits.MaxOperations} operations.");
        }

        _operations.Add(operation);
    }
}
