// Key Vault (RBAC mode) holding the app registration's credential: a certificate (preferred; the app reads the
// private key through the certificate's backing secret) or a client secret. Nothing else stores it.

@description('Key Vault name (3-24 letters, digits and hyphens, starting with a letter, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Purge protection: once on it cannot be turned off; deleted vaults and objects can then only be recovered, never purged, until the retention period ends.')
param enablePurgeProtection bool = true

@description('Days a deleted vault or object stays recoverable (7-90). Soft delete itself is always on (Azure no longer allows turning it off); this value cannot be changed after the vault is created.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Principal (object) id of the Function App\'s managed identity; receives Key Vault Secrets User.')
param appPrincipalId string

@description('Optional principal (object) id of a deploying admin (user, group or service principal); receives Key Vault Certificates Officer and Key Vault Secrets Officer so it can upload or rotate the credential. Empty: no assignment.')
param adminPrincipalId string = ''

@description('Type of adminPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string = 'User'

@description('Resource id of the Log Analytics workspace that receives the vault\'s AuditEvent log (every credential read, by whom).')
param logAnalyticsWorkspaceId string

@description('False: the vault is reachable only through its private endpoint (and from keyVaultAllowedIpRanges).')
param publicNetworkAccess bool = true

@description('Public IPv4 addresses or CIDR ranges still allowed when publicNetworkAccess is false (e.g. the admin who uploads and rotates the credential). Empty: none.')
param allowedIpRanges array = []

// Built-in role definitions (ids are the same in every tenant).
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var adminRoles = [
  {
    name: 'Key Vault Certificates Officer'
    id: 'a4417e6f-fecd-4de8-b567-7b0420556985'
  }
  {
    name: 'Key Vault Secrets Officer'
    id: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  }
]

var firewallIpRules = [
  for ipRange in allowedIpRanges: {
    value: ipRange
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    accessPolicies: []
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // Purge protection cannot be set to false explicitly: omit it (null) to leave it off.
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // With private access only, the listed admin addresses keep a way in through the firewall (public endpoint on,
    // default Deny); without any, the public endpoint is off altogether.
    publicNetworkAccess: publicNetworkAccess || !empty(allowedIpRanges) ? 'Enabled' : 'Disabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: publicNetworkAccess ? 'Allow' : 'Deny'
      ipRules: publicNetworkAccess ? [] : firewallIpRules
    }
  }
}

// The app reads the credential (certificate backing secret or client secret) and nothing else.
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Key Vault Secrets User for the mail gateway managed identity (reads the app credential)'
  }
}

resource adminRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in adminRoles: if (!empty(adminPrincipalId)) {
    name: guid(vault.id, adminPrincipalId, role.id)
    scope: vault
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
      principalId: adminPrincipalId
      principalType: adminPrincipalType
      description: '${role.name} for the mail gateway admin (uploads and rotates the app credential)'
    }
  }
]

// Who read or changed which credential, and when: Key Vault's AuditEvent category.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

@description('Vault name.')
output name string = vault.name

@description('Vault resource id.')
output id string = vault.id

@description('Vault URI (https://<name>.vault.azure.net/): KEY_VAULT_URL.')
output vaultUri string = vault.properties.vaultUri
