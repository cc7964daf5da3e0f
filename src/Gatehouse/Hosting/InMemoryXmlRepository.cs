using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace Gatehouse.Hosting;

/// <summary>Keeps ASP.NET Data Protection keys in process memory only: Gatehouse writes no key to disk unsealed.</summary>
internal sealed class InMemoryXmlRepository : IXmlRepository
{
    private readonly List<XElement> _elements = [];

    public IReadOnlyCollection<XElement> GetAllElements()
    {
        lock (_elements)
        {
            return [.. _elements.Select(e => new XElement(e))];
        }
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        lock (_elements)
        {
            _elements.Add(new XElement(element));
        }
    }
}
