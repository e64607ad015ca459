"""The people who decide escalations: the members file (names and token hashes), their token
files, and the client a person's CLI speaks to the approval API with. Below the approval
service, the registrar and `ironcurtain shared`, which all three use; stdlib only."""
