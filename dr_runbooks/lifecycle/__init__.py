"""The records lifecycle: retention that follows the last visit, legal holds, certified disposal."""
