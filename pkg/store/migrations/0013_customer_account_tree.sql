-- A customer's view shows the first accounts of its tree
-- (store.CustomerDebtAccounts): its top-level accounts oldest first (by
-- external id among those created together), each followed by its children
-- in the same order. These two indexes hold each in that order, so that the
-- view reads about what it shows however many accounts the customer has.
-- The second replaces the index on parent_id, which served equality only
-- and held every account, children or not; every look-up by parent_id
-- (children of an account, a cascade, the foreign key's check) is an
-- equality, which implies parent_id IS NOT NULL.
CREATE INDEX debt_accounts_top_level_tree_idx ON debt_accounts (customer_id, created_at, external_id) WHERE parent_id IS NULL;
CREATE INDEX debt_accounts_children_tree_idx ON debt_accounts (parent_id, created_at, external_id) WHERE parent_id IS NOT NULL;
DROP INDEX debt_accounts_parent_id_idx;
