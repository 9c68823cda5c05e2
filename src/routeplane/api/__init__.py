"""The Neutron v2.0 REST API (and a Keystone v3 subset), thin over the services."""
