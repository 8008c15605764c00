// Flex Consumption (FC1) plan + Linux Function App on Node.js. The runtime, scale and deployment storage live in
// functionAppConfig; Flex rejects the old app settings for them (FUNCTIONS_WORKER_RUNTIME,
// WEBSITE_NODE_DEFAULT_VERSION, WEBSITE_RUN_FROM_PACKAGE, ...), so appSettings must not contain them.

@description('Function App name (globally unique host name <name>.azurewebsites.net).')
@minLength(2)
@maxLength(60)
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region (must offer Flex Consumption: az functionapp list-flexconsumption-locations).')
param location string

@description('Tags applied to the plan and the app.')
param tags object = {}

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('URL of the blob container that receives deployment packages (https://<account>.blob.<suffix>/<container>).')
param deploymentContainerUrl string

@description('Upper bound of instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Node.js major version (functionAppConfig.runtime.version). Node 20 is out of support on Azure.')
@allowed([
  '22'
  '24'
])
param nodeVersion string = '22'

@description('App settings, name -> value (built in main.bicep). An empty WEBHOOK_BASE_URL becomes the app\'s own https origin.')
param appSettings object

@description('Resource id of the Log Analytics workspace that receives the function app logs (FunctionAppLogs).')
param logAnalyticsWorkspaceId string

@description('Resource id of a subnet delegated to Microsoft.App/environments for virtual network integration. Empty: no integration.')
param virtualNetworkSubnetId string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings (EVENTS_SIGNING_SECRET) resolve with the app's user-assigned identity.
    keyVaultReferenceIdentity: identityId
    // Outbound traffic (storage, Key Vault, Graph, Entra) leaves through the VNet when integrated.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
    // Flex Consumption refuses the site properties it does not support (ftpsState: "FTPS not supported",
    // alwaysOn, use32BitWorkerProcess, linuxFxVersion, ...: see "Deprecated properties" in Microsoft's Flex
    // Consumption docs). FTP does not exist on Flex; basic-auth publishing is off through the policies below.
    siteConfig: {
      minTlsVersion: '1.2'
    }
  }
}

// The settings are a child resource because WEBHOOK_BASE_URL defaults to the site's own default host name, which
// exists only once the site does (Flex apps may get a unique, region-qualified host name).
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(appSettings, {
    WEBHOOK_BASE_URL: empty(appSettings.WEBHOOK_BASE_URL)
      ? 'https://${site.properties.defaultHostName}'
      : appSettings.WEBHOOK_BASE_URL
  })
}

// Basic-auth (user name + password) publishing for FTP and for the SCM/Kudu site is off: publishing uses Entra ID.
resource basicPublishingCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = [
  for policy in [
    'ftp'
    'scm'
  ]: {
    parent: site
    name: policy
    properties: {
      allow: false
    }
  }
]

// The host's and the functions' own log lines, queryable in Log Analytics next to the Key Vault audit events.
resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

@description('Function App name.')
output name string = site.name

@description('Function App resource id.')
output id string = site.id

@description('Default host name (<name>.azurewebsites.net).')
output defaultHostname string = site.properties.defaultHostName
