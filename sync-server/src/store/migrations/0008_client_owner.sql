-- Every API client answers to a person: its owner, the human at the root of its creation
-- chain (a client made by a client has its creator's owner). Tasks and timesheets a client
-- makes count that person as their maker, so the person behind a client cannot approve what
-- the client made; a client whose owner is disabled, or which has none, is refused.
ALTER TABLE api_clients ADD COLUMN owner_id BLOB REFERENCES users (id);

-- Existing clients: follow created_by ("user:NAME" or "client:NAME") up to a person. Clients
-- made on the command line before owners existed keep NULL and stop working until re-issued
-- with `client create --owner USERNAME`.
WITH RECURSIVE chain (id, owner_id) AS (
    SELECT c.id, u.id FROM api_clients c
        JOIN users u ON c.created_by = 'user:' || u.username
    UNION
    SELECT c.id, chain.owner_id FROM api_clients c
        JOIN api_clients parent ON c.created_by = 'client:' || parent.name
        JOIN chain ON chain.id = parent.id
)
UPDATE api_clients SET owner_id = (SELECT owner_id FROM chain WHERE chain.id = api_clients.id)
WHERE owner_id IS NULL;
