"""The failover controller: a long-running daemon (like the agent, unlike the use cases
in ``services``) that follows health reports and moves service IPs; one leader acts."""
