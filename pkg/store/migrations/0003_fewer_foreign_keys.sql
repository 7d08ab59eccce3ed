-- Every imported record checked its organization and its bulk by foreign key:
-- two index look-ups and row locks per record, on the same two rows for a
-- whole bulk, about a third of the foreign-key work of an import. The import
-- sets both columns itself from the bulk it holds locked, so the checks
-- never catch anything; they go. Customer, location and parent links stay:
-- those come from the plan, row by row.
ALTER TABLE locations
    DROP CONSTRAINT locations_organization_id_fkey,
    DROP CONSTRAINT locations_bulk_id_fkey;
ALTER TABLE customers
    DROP CONSTRAINT customers_organization_id_fkey,
    DROP CONSTRAINT customers_bulk_id_fkey;
ALTER TABLE debt_accounts
    DROP CONSTRAINT debt_accounts_organization_id_fkey,
    DROP CONSTRAINT debt_accounts_bulk_id_fkey;
