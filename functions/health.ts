import { app } from '@azure/functions';
import { healthResponse } from '../shared/diagnostics/health';
import { services } from '../shared/app/services';

app.http('health', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'health',
  handler: () => healthResponse(() => services().config),
});
